"""``change-point``: a piecewise-constant 1-D signal with a latent segmentation (sticky HMM).

    s_1 ~ Categorical(initial)       s_t | s_{t-1} ~ Categorical(A[s_{t-1}])
    x_t | s_t ~ Normal(level_means[s_t], noise_scale^2)        y_t = u_t = level_means[s_t]

``A = stay * I + (1 - stay) / (K - 1) * (1 - I)``: stay in the current level with
probability ``stay``, else jump to one of the other levels uniformly. The tokens
have positions, so the model is **not** exchangeable (see
:mod:`bayesattn.models._sequence`). The exact posterior is forward–backward in
float64 and log space, O(L K^2); the co-segmentation matrix P(s_i = s_j | x) is
exact from products of transition/emission matrices, O(L^2 K^2).

Masked positions (mask False) are *missing observations*: the chain still passes
through them, their emission is left out. With right padding this equals running
on the truncated sequence exactly; values reported at padded positions are the
posterior predictive of the state there.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pyro.poutine as poutine
import torch

from ._errors import ModelInputError
from ._params import float_array, in_interval, integer, simplex_rows
from ._sequence import SequenceModel, register_sequence


def sticky_transition(num_levels: int, stay: float) -> np.ndarray:
    """``(K, K)`` transition matrix: stay w.p. ``stay``, else a uniform jump elsewhere."""
    if num_levels == 1:
        return np.ones((1, 1))
    off = (1.0 - stay) / (num_levels - 1)
    return stay * np.eye(num_levels) + off * (1.0 - np.eye(num_levels))


@dataclass(frozen=True)
class ChangePointPosterior:
    """Exact posterior summaries of a batch, all float64.

    Attributes:
        marginals: ``(B, L, K)`` P(s_i = k | x).
        signal_mean: ``(B, L)`` E[u_i | x] with u_i = level_means[s_i].
        signal_var: ``(B, L)`` Var[u_i | x].
        log_evidence: ``(B,)`` log p(x) (masked positions left out).
        mask: ``(B, L)`` the mask used.
    """

    marginals: torch.Tensor
    signal_mean: torch.Tensor
    signal_var: torch.Tensor
    log_evidence: torch.Tensor
    mask: torch.Tensor


@register_sequence
class ChangePoint(SequenceModel):
    """Sticky HMM with K known levels and Gaussian noise (a piecewise-constant signal).

    Args:
        K: Number of levels (>= 1). Default 3, or ``len(level_means)`` when given.
        level_means: K level values (default evenly spaced on [-2, 2]).
        stay: Probability in [0, 1] of keeping the current level at each step.
        noise_scale: Observation noise standard deviation (> 0).
        initial: Distribution of s_1, K probabilities (default uniform).
    """

    name = "change-point"

    def __init__(self, K: int | None = None, level_means: Any = None, stay: float = 0.95,
                 noise_scale: float = 0.5, initial: Any = None) -> None:
        n = self.name
        mu = None if level_means is None else float_array(n, "level_means", level_means)
        K = integer(n, "K", K if K is not None else (3 if mu is None else mu.shape[0]), 1)
        if mu is None:
            mu = np.linspace(-2.0, 2.0, K) if K > 1 else np.zeros(1)
        mu = float_array(n, "level_means", mu, (K,), dims="(K,)")
        stay = in_interval(n, "stay", stay, 0.0, 1.0)
        noise_scale = in_interval(n, "noise_scale", noise_scale, 0.0, math.inf, open_low=True)
        init = np.full(K, 1.0 / K) if initial is None else initial
        init = simplex_rows(n, "initial", init, (K,), positive=False, dims="(K,)")
        super().__init__(K=K, level_means=mu.tolist(), stay=stay, noise_scale=noise_scale,
                         initial=init.tolist())

    @property
    def transition(self) -> np.ndarray:
        """``(K, K)`` transition matrix A[from, to]."""
        return sticky_transition(self.params["K"], self.params["stay"])

    # Pyro program (pyro.markov: enumeration-friendly) ---------------------------
    def pyro_model(self, x=None, *, num_sequences: int, seq_len: int, mask=None,
                   device=None):
        """HMM in Pyro, one site pair ``s_t`` / ``x_t`` per position t.

        Args:
            x: Observations ``(B, L)`` or None to sample them.
            num_sequences: B.
            seq_len: L.
            mask: Bool ``(B, L)``; False = missing observation (its ``x_t`` is masked).
            device: Device of parameters and samples when ``x`` is None.

        Returns:
            List of L state tensors (each ``(B,)`` when not enumerated).
        """
        if x is not None:
            device = x.device
        init = self.tensor(self.params["initial"], device)
        trans = self.tensor(self.transition, device)
        means = self.tensor(self.params["level_means"], device)
        states, s = [], None
        with pyro.plate("sequences", num_sequences, dim=-1):
            for t in pyro.markov(range(seq_len)):
                probs = init if s is None else trans[s]
                s = pyro.sample(f"s_{t}", pdist.Categorical(probs),
                                infer={"enumerate": "parallel"})
                masked = (poutine.mask(mask=mask[:, t]) if mask is not None
                          else contextlib.nullcontext())
                with masked:
                    pyro.sample(f"x_{t}", pdist.Normal(means[s], self.params["noise_scale"]),
                                obs=None if x is None else x[:, t])
                states.append(s)
        return states

    # NumPyro twin (a plain loop with the same site names) -----------------------
    def numpyro_model(self, x=None, *, num_sequences: int, seq_len: int, mask=None):
        """The same program in NumPyro (JAX arrays; run under ``jax.enable_x64``)."""
        import numpyro

        init = jnp.asarray(self.params["initial"])
        trans = jnp.asarray(self.transition)
        means = jnp.asarray(self.params["level_means"])
        states, s = [], None
        with numpyro.plate("sequences", num_sequences, dim=-1):
            for t in range(seq_len):
                probs = init if s is None else trans[s]
                s = numpyro.sample(f"s_{t}", ndist.Categorical(probs))
                masked = (numpyro.handlers.mask(mask=mask[:, t]) if mask is not None
                          else contextlib.nullcontext())
                with masked:
                    numpyro.sample(f"x_{t}", ndist.Normal(means[s], self.params["noise_scale"]),
                                   obs=None if x is None else x[:, t])
                states.append(s)
        return states

    def _collect(self, trace, num_sequences, seq_len):
        z = torch.stack([trace.nodes[f"s_{t}"]["value"] for t in range(seq_len)], -1).long()
        x = torch.stack([trace.nodes[f"x_{t}"]["value"] for t in range(seq_len)], -1)
        y = self.tensor(self.params["level_means"], x.device)[z]
        return z, x, y

    # log joint ------------------------------------------------------------------
    def log_joint(self, z: Any, x: Any, *, mask: Any = None, backend: str = "pyro"
                  ) -> torch.Tensor:
        """log p(s, x) per sequence (masked observations left out), by running a program.

        Args:
            z: States ``(B, L)``, integers in {0..K-1}.
            x: Observations ``(B, L)``.
            mask: Bool ``(B, L)``.
            backend: ``"pyro"`` or ``"numpyro"``.

        Returns:
            float64 ``(B,)``.
        """
        x, mask = self.validate_tokens(x, mask)
        z = self._check_states(z, x.shape)
        b, length = x.shape
        if backend == "pyro":
            data = {f"s_{t}": z[:, t] for t in range(length)}
            tr = poutine.trace(poutine.condition(self.pyro_model, data=data)).get_trace(
                x, num_sequences=b, seq_len=length, mask=mask)
            tr.compute_log_prob()
            return sum(tr.nodes[f"{v}_{t}"]["log_prob"] for t in range(length) for v in "sx")
        if backend == "numpyro":
            import jax
            from numpyro import handlers

            with jax.enable_x64(True):
                data = {f"s_{t}": jnp.asarray(z[:, t].cpu().numpy()) for t in range(length)}
                model = handlers.condition(self.numpyro_model, data=data)
                tr = handlers.trace(handlers.seed(model, 0)).get_trace(
                    jnp.asarray(x.cpu().numpy()), num_sequences=b, seq_len=length,
                    mask=jnp.asarray(mask.cpu().numpy()))
                total = sum(site["fn"].log_prob(site["value"]) for site in tr.values()
                            if site["type"] == "sample")
                out = np.array(total, dtype=np.float64)
            return torch.as_tensor(out, device=x.device)
        raise ModelInputError(f"backend must be 'pyro' or 'numpyro'; got {backend!r}.")

    def _check_states(self, z: Any, shape: torch.Size) -> torch.Tensor:
        z = torch.as_tensor(z)
        if tuple(z.shape) != tuple(shape) or z.is_floating_point() or z.is_complex():
            raise ModelInputError(
                f"{self.name}: states z must be an integer tensor of shape {tuple(shape)} "
                f"(B, L); got dtype {z.dtype}, shape {tuple(z.shape)}.")
        if bool(((z < 0) | (z >= self.params["K"])).any()):
            raise ModelInputError(f"{self.name}: states must lie in 0..{self.params['K'] - 1}.")
        return z.long()

    # exact posterior: forward-backward ------------------------------------------
    def emission_loglik(self, x: Any, mask: Any = None) -> torch.Tensor:
        """log N(x_t | level_means[k], noise^2), ``(B, L, K)``; 0 at masked positions."""
        x, mask = self.validate_tokens(x, mask)
        means = self.tensor(self.params["level_means"], x.device)
        s = self.params["noise_scale"]
        ll = -0.5 * ((x[..., None] - means) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
        return torch.where(mask[..., None], ll, torch.zeros((), dtype=ll.dtype))

    def _forward_backward(self, x: Any, mask: Any):
        x, mask = self.validate_tokens(x, mask)
        log_e = self.emission_loglik(x, mask)  # (B, L, K)
        b, length, k = log_e.shape
        with np.errstate(divide="ignore"):
            log_a = self.tensor(np.log(self.transition), x.device)  # (K, K)
            log_init = self.tensor(np.log(self.params["initial"]), x.device)
        la = torch.empty_like(log_e)
        log_c = torch.empty(b, length, dtype=torch.float64, device=x.device)
        prev = log_init + log_e[:, 0]
        for t in range(length):
            if t > 0:
                prev = log_e[:, t] + torch.logsumexp(la[:, t - 1, :, None] + log_a, dim=1)
            log_c[:, t] = torch.logsumexp(prev, -1)
            la[:, t] = prev - log_c[:, t, None]
        log_evidence = log_c.sum(-1)
        if not torch.isfinite(log_evidence).all():
            i = int((~torch.isfinite(log_evidence)).nonzero()[0, 0])
            raise ModelInputError(f"{self.name}: sequence {i} has probability zero under the "
                                  "model (e.g. stay=1 with several levels); no posterior exists.")
        lb = torch.zeros_like(log_e)
        for t in range(length - 2, -1, -1):
            nxt = (log_e[:, t + 1] + lb[:, t + 1])[:, None, :] + log_a  # (B, K, K)
            lb[:, t] = torch.logsumexp(nxt, -1) - log_c[:, t + 1, None]
        return x, mask, log_e, log_a, la, lb, log_c, log_evidence

    def sample_posterior(self, x: Any, num_draws: int, *, seed: int, mask: Any = None,
                         return_states: bool = False) -> torch.Tensor | tuple[torch.Tensor,
                                                                              torch.Tensor]:
        """Exact joint posterior draws by forward filtering, backward sampling (FFBS).

        s_L is drawn from P(s_L | x), then s_t from P(s_t | s_{t+1}, x_{1..t}), which is
        proportional to alpha_t(s_t) A[s_t, s_{t+1}]: O(num_draws L K) after one forward
        pass. Uses its own NumPy generator seeded with ``seed`` (global RNGs untouched).

        Args:
            x: Observations ``(B, L)``.
            num_draws: Number of joint draws per sequence (>= 1).
            seed: Seed of the draws.
            mask: Bool ``(B, L)`` (False = missing / padding) or None.
            return_states: Also return the level indices.

        Returns:
            Signal draws u = level_means[s], float64 ``(num_draws, B, L)``; with
            ``return_states`` also the states ``s``, int64 ``(num_draws, B, L)``.
        """
        num_draws = integer(self.name, "num_draws", num_draws, 1)
        _, _, _, log_a, la, _, _, _ = self._forward_backward(x, mask)
        la, log_a = la.cpu().numpy(), log_a.cpu().numpy()
        means = np.asarray(self.params["level_means"], dtype=np.float64)
        rng = np.random.default_rng(seed)
        b, length, k = la.shape
        s = np.empty((num_draws, b, length), dtype=np.int64)

        def draw(logp: np.ndarray) -> np.ndarray:  # (draws, B, K) -> (draws, B)
            prob = np.exp(logp - logp.max(-1, keepdims=True))
            cdf = np.cumsum(prob / prob.sum(-1, keepdims=True), -1)
            r = rng.random(cdf.shape[:-1] + (1,))
            return np.minimum((r > cdf).sum(-1), k - 1)

        s[:, :, length - 1] = draw(np.broadcast_to(la[:, length - 1], (num_draws, b, k)))
        for t in range(length - 2, -1, -1):
            logp = la[None, :, t, :] + log_a[:, s[:, :, t + 1]].transpose(1, 2, 0)
            s[:, :, t] = draw(logp)
        signal = torch.from_numpy(means[s])
        return (signal, torch.from_numpy(s)) if return_states else signal

    def exact_posterior(self, x: Any, mask: Any = None) -> ChangePointPosterior:
        """Posterior marginals, signal mean/variance and evidence by forward–backward.

        Args:
            x: Observations ``(B, L)``.
            mask: Bool ``(B, L)`` (False = missing / padding) or None.

        Returns:
            :class:`ChangePointPosterior` (float64).
        """
        x, mask, _, _, la, lb, _, log_ev = self._forward_backward(x, mask)
        lg = la + lb
        gamma = torch.softmax(lg, -1)
        means = self.tensor(self.params["level_means"], x.device)
        mean = gamma @ means
        var = (gamma @ means**2 - mean**2).clamp_min(0.0)
        return ChangePointPosterior(gamma, mean, var, log_ev, mask)

    def co_segmentation(self, x: Any, mask: Any = None) -> torch.Tensor:
        """P(s_i = s_j | x) for all pairs, ``(B, L, L)`` float64 (symmetric, unit diagonal).

        For i < j, P(s_i = a, s_j = b | x) = alpha_i(a) [prod_{t=i+1}^{j} A diag(e_t) / c_t]_{ab}
        beta_j(b) with the normalised forward/backward messages; all i for one offset
        j - i are propagated at once (L steps of O(L K^2)).
        """
        x, mask, log_e, log_a, la, lb, log_c, _ = self._forward_backward(x, mask)
        b, length, k = la.shape
        step = log_e - log_c[..., None]  # (B, L, K): log e_t(b) - log c_t
        out = torch.eye(length, dtype=torch.float64, device=x.device).repeat(b, 1, 1)
        diag = torch.eye(k, dtype=torch.bool, device=x.device)
        log_m = la[:, :, :, None] + torch.where(diag, 0.0, -math.inf)  # (B, L, K, K): diag(alpha_i)
        for d in range(1, length):
            # log_m[:, i] = log P(s_i = a, s_{i+d} = b | x_{1..i+d}), i = 0..L-d-1
            log_m = torch.logsumexp(log_m[:, : length - d, :, :, None] + log_a, dim=3)
            log_m = log_m + step[:, d:, None, :]
            joint = log_m + lb[:, d:, None, :]
            same = torch.logsumexp(joint.diagonal(dim1=-2, dim2=-1), -1).exp()  # (B, L-d)
            idx = torch.arange(length - d, device=x.device)
            out[:, idx, idx + d] = same
            out[:, idx + d, idx] = same
        return out

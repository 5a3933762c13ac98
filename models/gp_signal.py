"""``gp-signal``: a Gaussian-process signal observed in Gaussian noise (linear-Gaussian).

    u ~ N(0, S)        x = u + N(0, noise_scale^2 I)        y = u (the clean signal)

``S_ij = amplitude^2 k(||p_i - p_j|| / lengthscale) + jitter * [i == j]`` on 1-D positions
``p_i = i`` or, with ``grid_width = W``, on a 2-D grid ``p_i = (i // W, i % W)``
(row-major image patches). ``k`` is RBF or Matérn 1/2, 3/2, 5/2. The posterior is
Gaussian with mean ``W x`` where ``W = S (S + s^2 I)^-1`` is the posterior-mean
smoother of paper 2 (docs/claims.md#paper-2), and covariance ``S - S (S + s^2 I)^-1 S``.
Masked positions are missing observations (the posterior still covers them).
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pyro.poutine as poutine
import torch

from ._errors import ModelInputError
from ._params import in_interval, integer
from ._sequence import SequenceModel, register_sequence

KERNELS = ("rbf", "matern12", "matern32", "matern52")


def kernel_matrix(pos_a: np.ndarray, pos_b: np.ndarray, *, kernel: str, lengthscale: float,
                  amplitude: float) -> np.ndarray:
    """Stationary covariance between positions ``(n, D)`` and ``(m, D)``; ``(n, m)`` float64."""
    r = np.sqrt(((pos_a[:, None, :] - pos_b[None, :, :]) ** 2).sum(-1)) / lengthscale
    if kernel == "rbf":
        k = np.exp(-0.5 * r**2)
    elif kernel == "matern12":
        k = np.exp(-r)
    elif kernel == "matern32":
        k = (1.0 + math.sqrt(3) * r) * np.exp(-math.sqrt(3) * r)
    elif kernel == "matern52":
        k = (1.0 + math.sqrt(5) * r + 5.0 * r**2 / 3.0) * np.exp(-math.sqrt(5) * r)
    else:
        raise ModelInputError(f"kernel must be one of {KERNELS}; got {kernel!r}.")
    return amplitude**2 * k


@register_sequence
class GPSignal(SequenceModel):
    """Gaussian-process prior on a 1-D (or 2-D grid) signal, Gaussian observation noise.

    Args:
        kernel: ``"rbf"``, ``"matern12"``, ``"matern32"`` or ``"matern52"``.
        lengthscale: Kernel length scale in position units (> 0).
        amplitude: Prior standard deviation of u_i (> 0).
        noise_scale: Observation noise standard deviation s (> 0).
        grid_width: None for 1-D positions ``p_i = i``; an integer W >= 1 for a 2-D
            row-major grid ``p_i = (i // W, i % W)`` (L = H * W for an H x W patch).
        jitter: Added to the diagonal of S (>= 0) so that its Cholesky factor exists.
    """

    name = "gp-signal"

    def __init__(self, kernel: str = "rbf", lengthscale: float = 4.0, amplitude: float = 1.0,
                 noise_scale: float = 0.5, grid_width: int | None = None,
                 jitter: float = 1e-8) -> None:
        n = self.name
        if kernel not in KERNELS:
            raise ModelInputError(f"{n}: kernel must be one of {KERNELS}; got {kernel!r}.")
        pos = dict(open_low=True)
        super().__init__(
            kernel=kernel,
            lengthscale=in_interval(n, "lengthscale", lengthscale, 0.0, math.inf, **pos),
            amplitude=in_interval(n, "amplitude", amplitude, 0.0, math.inf, **pos),
            noise_scale=in_interval(n, "noise_scale", noise_scale, 0.0, math.inf, **pos),
            grid_width=None if grid_width is None else integer(n, "grid_width", grid_width, 1),
            jitter=in_interval(n, "jitter", jitter, 0.0, math.inf),
        )

    # Fixed matrices ---------------------------------------------------------------
    def positions(self, seq_len: int) -> np.ndarray:
        """Positions of the L tokens, ``(L, 1)`` (1-D) or ``(L, 2)`` (grid), float64."""
        i = np.arange(seq_len, dtype=np.float64)
        w = self.params["grid_width"]
        if w is None:
            return i[:, None]
        return np.stack([i // w, i % w], -1)

    def covariance(self, seq_len: int) -> np.ndarray:
        """Prior covariance S ``(L, L)`` (jitter included), float64 NumPy."""
        p = self.positions(seq_len)
        s = kernel_matrix(p, p, kernel=self.params["kernel"],
                          lengthscale=self.params["lengthscale"],
                          amplitude=self.params["amplitude"])
        return s + self.params["jitter"] * np.eye(seq_len)

    def smoother(self, seq_len: int) -> torch.Tensor:
        """Posterior-mean smoother ``W = S (S + s^2 I)^-1``, ``(L, L)`` float64 (no padding)."""
        s = self.tensor(self.covariance(seq_len))
        a = s + self.params["noise_scale"] ** 2 * torch.eye(seq_len, dtype=torch.float64)
        return torch.linalg.solve(a, s).T  # S symmetric and A symmetric: (A^-1 S)^T = S A^-1

    # Pyro program -----------------------------------------------------------------
    def _x_dist_pyro(self, u, mask):
        d = pdist.Normal(u, self.params["noise_scale"])
        return (d.mask(mask) if mask is not None else d).to_event(1)

    def pyro_model(self, x=None, *, num_sequences: int, seq_len: int, mask=None,
                   device=None):
        """``z = u ~ MVN(0, S)`` and ``x ~ Normal(u, s)`` (event ``(L,)``) per sequence.

        Args:
            x: Observations ``(B, L)`` or None. mask: Bool ``(B, L)`` (False = missing).

        Returns:
            u, shape ``(B, L)``.
        """
        if x is not None:
            device = x.device
        cov = self.tensor(self.covariance(seq_len), device)
        loc = torch.zeros(seq_len, dtype=torch.float64, device=device)
        with pyro.plate("sequences", num_sequences, dim=-1):
            u = pyro.sample("z", pdist.MultivariateNormal(loc, covariance_matrix=cov))
            pyro.sample("x", self._x_dist_pyro(u, mask), obs=x)
        return u

    # NumPyro twin -----------------------------------------------------------------
    def numpyro_model(self, x=None, *, num_sequences: int, seq_len: int, mask=None):
        """The same program in NumPyro (JAX arrays; run under ``jax.enable_x64``)."""
        import numpyro

        cov = jnp.asarray(self.covariance(seq_len))
        with numpyro.plate("sequences", num_sequences, dim=-1):
            u = numpyro.sample("z", ndist.MultivariateNormal(jnp.zeros(seq_len),
                                                             covariance_matrix=cov))
            d = ndist.Normal(u, self.params["noise_scale"])
            d = d.mask(mask) if mask is not None else d
            numpyro.sample("x", d.to_event(1), obs=x)
        return u

    def _collect(self, trace, num_sequences, seq_len):
        u = trace.nodes["z"]["value"]
        return u, trace.nodes["x"]["value"], u.clone()

    def log_joint(self, z: Any, x: Any, *, mask: Any = None, backend: str = "pyro"
                  ) -> torch.Tensor:
        """log p(u, x) per sequence by running either program; float64 ``(B,)``."""
        x, mask = self.validate_tokens(x, mask)
        z = torch.as_tensor(z, dtype=torch.float64, device=x.device)
        if tuple(z.shape) != tuple(x.shape):
            raise ModelInputError(f"{self.name}: z must have shape {tuple(x.shape)} (B, L); "
                                  f"got {tuple(z.shape)}.")
        b, length = x.shape
        if backend == "pyro":
            model = poutine.condition(self.pyro_model, data={"z": z})
            tr = poutine.trace(model).get_trace(x, num_sequences=b, seq_len=length, mask=mask)
            tr.compute_log_prob()
            return tr.nodes["z"]["log_prob"] + tr.nodes["x"]["log_prob"]
        if backend == "numpyro":
            import jax
            from numpyro import handlers

            with jax.enable_x64(True):
                model = handlers.condition(self.numpyro_model,
                                           data={"z": jnp.asarray(z.cpu().numpy())})
                tr = handlers.trace(handlers.seed(model, 0)).get_trace(
                    jnp.asarray(x.cpu().numpy()), num_sequences=b, seq_len=length,
                    mask=jnp.asarray(mask.cpu().numpy()))
                total = sum(tr[k]["fn"].log_prob(tr[k]["value"]) for k in ("z", "x"))
                out = np.array(total, dtype=np.float64)
            return torch.as_tensor(out, device=x.device)
        raise ModelInputError(f"backend must be 'pyro' or 'numpyro'; got {backend!r}.")

    # Exact posterior --------------------------------------------------------------
    def exact_posterior(self, x: Any, mask: Any = None
                        ) -> torch.distributions.MultivariateNormal:
        """p(u | x) = MVN(S M A^-1 M x, S - S M A^-1 M S), batch_shape ``(B,)``, event ``(L,)``.

        ``M = diag(mask)`` and ``A = M S M + diag(s^2 m + (1 - m))``: masked rows and
        columns of A become identity, so one batched solve handles every mask exactly
        (the same as conditioning on the observed positions only).

        Args:
            x: Observations ``(B, L)``.
            mask: Bool ``(B, L)`` (False = missing / padding) or None.
        """
        x, mask = self.validate_tokens(x, mask)
        b, length = x.shape
        s = self.tensor(self.covariance(length), x.device)
        m = mask.to(torch.float64)  # (B, L)
        a = m[:, :, None] * s * m[:, None, :]
        a = a + torch.diag_embed(self.params["noise_scale"] ** 2 * m + (1.0 - m))
        chol = torch.linalg.cholesky(a)
        rhs = torch.cat([(m * x)[..., None], m[:, :, None] * s], -1)  # (B, L, 1 + L)
        sol = torch.cholesky_solve(rhs, chol)  # A^-1 [M x, M S]
        mean = (s @ (m[:, :, None] * sol[..., :1])).squeeze(-1)
        cov = s - s @ (m[:, :, None] * sol[..., 1:])
        cov = 0.5 * (cov + cov.transpose(-1, -2))
        return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)

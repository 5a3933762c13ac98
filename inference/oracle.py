"""The hand-set "desired parameter" attention of paper 1 (no training), in float64.

* :func:`cme_attention`: kernel conditional-mean-embedding attention
  ``out(q) = V^T (G + n lambda I)^-1 kappa_K(q)``. With the linear kernel and
  ``n lambda = sigma^2 / tau^2`` it *is* the posterior predictive mean of in-context Bayesian
  linear regression (:class:`LinearRegressionOracle`); with a kernel kappa and
  ``n lambda = sigma^2`` it is the GP posterior mean (:func:`gp_posterior_mean`).
* :class:`ConceptMixtureOracle`: softmax attention with equal logits (zero query map) pools
  the per-token values ``v_i = (log p(x_i | z=k))_k``; the readout
  ``softmax(log w + L * mean_i v_i)`` is the exact posterior when L is supplied. Relatives:
  ``"fixed-length"`` (L0 instead of L: length-unaware, P12) and ``"hard"`` (temperature -> 0,
  one-hot argmax, P4). This mixture construction is our reading of paper 1's "desired
  parameter" **(reconstruction)**; the CME/regression identity is exact.

``mask`` is a bool ``(B, L)`` tensor, True = real token; padded tokens have no effect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from bayesattn.models import FiniteMixture, check_mask
from bayesattn.models.linear_regression import LinearRegression

__all__ = [
    "ConceptMixtureOracle",
    "LinearRegressionOracle",
    "OracleInputError",
    "OracleTypeError",
    "cme_attention",
    "gp_posterior_mean",
]

Kernel = Literal["linear", "gaussian"] | Callable[[Tensor, Tensor], Tensor]
MODES = ("exact", "fixed-length", "hard")


class OracleInputError(ValueError):
    """An input of the wrong shape or value; the message says expected, got and the fix."""


class OracleTypeError(TypeError):
    """An input of the wrong type; the message says expected, got and the fix."""


# ---------------------------------------------------------------------- validation
def _tensor(value: Any, name: str) -> Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))
    if not isinstance(value, Tensor):
        raise OracleTypeError(
            f"{name} must be a torch.Tensor or numpy array; got {type(value).__name__}. "
            "Wrap it with torch.as_tensor(...)."
        )
    return value


def _real_tensor(value: Any, name: str, ndim: int) -> Tensor:
    """``value`` as a float64 tensor with ``ndim`` dimensions (no NaN check: see callers)."""
    value = _tensor(value, name)
    if value.dtype == torch.bool or value.is_complex():
        raise OracleTypeError(
            f"{name} must hold real numbers; got dtype {value.dtype}. Convert with .double()."
        )
    if value.ndim != ndim:
        raise OracleInputError(
            f"{name} must have {ndim} dimensions (batch, length, feature); "
            f"got shape {tuple(value.shape)}."
        )
    return value.to(torch.float64)


def _check_ridge(ridge: Any, batch: int, device: torch.device) -> Tensor:
    """``ridge`` (a float or a ``(B,)`` tensor) as a positive finite float64 ``(B,)`` tensor."""
    if isinstance(ridge, bool) or not isinstance(ridge, (int, float, np.floating, Tensor)):
        raise OracleTypeError(
            f"ridge must be a positive float or a (B,) tensor; got {type(ridge).__name__}."
        )
    lam = torch.as_tensor(ridge, dtype=torch.float64, device=device)
    if lam.ndim == 0:
        lam = lam.expand(batch)
    if tuple(lam.shape) != (batch,):
        raise OracleInputError(
            f"ridge must be a float or have shape (B,) = ({batch},); got {tuple(lam.shape)}."
        )
    if not bool((torch.isfinite(lam) & (lam > 0)).all()):
        raise OracleInputError(
            f"ridge must be finite and > 0 for every sequence; got {lam.tolist()}. "
            "Pass a positive regulariser lambda."
        )
    return lam


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise OracleTypeError(f"{name} must be a positive number; got {type(value).__name__}.")
    if not (np.isfinite(value) and value > 0):
        raise OracleInputError(f"{name} must be finite and > 0; got {value!r}.")
    return float(value)


def _check_inputs(keys, values, queries, mask) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Validate the attention inputs; padded keys and values are replaced by zeros."""
    keys = _real_tensor(keys, "keys", 3)
    values = _real_tensor(values, "values", 3).to(keys.device)
    queries = _real_tensor(queries, "queries", 3).to(keys.device)
    b, length, dk = keys.shape
    if b == 0 or length == 0:
        raise OracleInputError(f"keys must have B >= 1 and L >= 1; got shape {(b, length, dk)}.")
    if tuple(values.shape[:2]) != (b, length):
        raise OracleInputError(
            f"values must have shape (B, L, dv) with (B, L) = {(b, length)} as the keys; "
            f"got {tuple(values.shape)}."
        )
    if queries.shape[0] != b or queries.shape[2] != dk:
        raise OracleInputError(
            f"queries must have shape (B, Q, dk) = ({b}, Q, {dk}) to match the keys; "
            f"got {tuple(queries.shape)}."
        )
    mask = check_mask(mask, b, length, keys.device)
    m = mask[..., None]
    for name, t in (("keys", keys), ("values", values)):
        if not bool((torch.isfinite(t) | ~m).all()):
            raise OracleInputError(
                f"{name} must be finite at real tokens; use the mask (False = padding) "
                "instead of NaN/inf padding."
            )
    if not bool(torch.isfinite(queries).all()):
        raise OracleInputError("queries must be finite.")
    zero = keys.new_zeros(())
    return torch.where(m, keys, zero), torch.where(m, values, zero), queries, mask


# ---------------------------------------------------------------------- kernels
def _kernel_fn(kernel: Any, bandwidth: float) -> Callable[[Tensor, Tensor], Tensor]:
    if callable(kernel):
        return kernel
    if kernel == "linear":
        return lambda a, b: a @ b.mT
    if kernel == "gaussian":
        two_h2 = 2.0 * bandwidth**2

        def gaussian(a: Tensor, b: Tensor) -> Tensor:
            sq = (a * a).sum(-1)[..., :, None] + (b * b).sum(-1)[..., None, :] - 2.0 * a @ b.mT
            return torch.exp(-sq.clamp_min(0.0) / two_h2)

        return gaussian
    raise OracleInputError(
        f"kernel must be 'linear', 'gaussian' or a callable kappa(a, b) -> (B, n, m); "
        f"got {kernel!r}."
    )


def _evaluate(fn: Callable, a: Tensor, b: Tensor) -> Tensor:
    out = fn(a, b)
    want = (a.shape[0], a.shape[1], b.shape[1])
    if not isinstance(out, Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise OracleInputError(
            f"kernel(a (B, n, d), b (B, m, d)) must return a tensor of shape (B, n, m) = "
            f"{want}; got {got}."
        )
    return out.to(torch.float64)


# ---------------------------------------------------------------------- CME attention
def _cme(keys: Tensor, values: Tensor, queries: Tensor, mask: Tensor,
         fn: Callable[[Tensor, Tensor], Tensor], total_ridge: Tensor) -> Tensor:
    """``V^T (G + r_b I)^-1 kappa_K(q)`` on validated inputs; ``total_ridge`` r_b = n_b lambda_b.

    Padded rows/columns of G are the identity and padded entries of V and kappa_K(q) are
    zero, so the system is block diagonal and padding has no effect.
    """
    b, length, _ = keys.shape
    pair = mask[:, :, None] & mask[:, None, :]  # (B, L, L)
    eye = torch.eye(length, dtype=torch.float64, device=keys.device)
    gram = torch.where(pair, _evaluate(fn, keys, keys), 0.0)  # (B, L, L)
    if not bool(torch.isfinite(gram).all()):
        raise OracleInputError("the kernel returned non-finite values on the keys.")
    scale = gram.abs().amax().clamp_min(1.0)
    if not bool(((gram - gram.mT).abs() <= 1e-10 * scale).all()):
        raise OracleInputError(
            "the kernel Gram matrix kappa(keys, keys) is not symmetric; CME attention needs a "
            "symmetric positive semi-definite kernel."
        )
    gram = torch.where(pair, 0.5 * (gram + gram.mT), eye)
    diag = torch.where(mask, total_ridge[:, None], 0.0)  # (B, L)
    system = gram + torch.diag_embed(diag)  # (B, L, L)
    cross = torch.where(mask[..., None], _evaluate(fn, keys, queries), 0.0)  # (B, L, Q)
    if not bool(torch.isfinite(cross).all()):
        raise OracleInputError("the kernel returned non-finite values on (keys, queries).")
    chol, info = torch.linalg.cholesky_ex(system)
    if bool((info > 0).any()):
        i = int((info > 0).nonzero()[0, 0])
        raise OracleInputError(
            f"G + n lambda I is not positive definite for sequence {i}; use a positive "
            "semi-definite kernel or a larger ridge."
        )
    weights = torch.cholesky_solve(cross, chol)  # (B, L, Q)
    return weights.mT @ values  # (B, Q, dv)


def cme_attention(
    keys: Tensor,
    values: Tensor,
    queries: Tensor,
    *,
    kernel: Kernel = "linear",
    ridge: float | Tensor,
    mask: Tensor | None = None,
    bandwidth: float = 1.0,
) -> Tensor:
    """Kernel conditional-mean-embedding (CME) attention of paper 1, in float64.

    ``out_b(q) = V_b^T (G_b + n_b lambda_b I)^-1 kappa_K(q)`` with ``G_ij = kappa(k_i, k_j)``
    and ``kappa_K(q) = (kappa(k_i, q))_i`` over the ``n_b`` real tokens of sequence b.
    Solved with a Cholesky factorisation. A sequence with no real token gives 0.

    Args:
        keys: ``(B, L, dk)`` keys.
        values: ``(B, L, dv)`` values.
        queries: ``(B, Q, dk)`` queries.
        kernel: ``"linear"`` (``<k, k'>``), ``"gaussian"``
            (``exp(-||k - k'||^2 / (2 bandwidth^2))``) or a callable
            ``kappa(a (B, n, d), b (B, m, d)) -> (B, n, m)`` (symmetric, PSD).
        ridge: lambda > 0, a float or a ``(B,)`` tensor (one per sequence); the
            regulariser added to the Gram matrix is ``n_b * lambda_b``.
        mask: Bool ``(B, L)``, True = real token; None = all real.
        bandwidth: Gaussian kernel bandwidth (> 0); ignored by the other kernels.

    Returns:
        float64 tensor ``(B, Q, dv)``.

    Raises:
        OracleInputError: wrong shapes, non-finite inputs, ridge <= 0, an unknown kernel,
            or a Gram matrix that is not symmetric positive definite.
        OracleTypeError: an input of the wrong type (e.g. a non-bool mask).
    """
    keys, values, queries, mask = _check_inputs(keys, values, queries, mask)
    lam = _check_ridge(ridge, keys.shape[0], keys.device)
    fn = _kernel_fn(kernel, _positive(bandwidth, "bandwidth"))
    count = mask.sum(-1).to(torch.float64)  # (B,)
    return _cme(keys, values, queries, mask, fn, count * lam)


def gp_posterior_mean(
    keys: Tensor,
    values: Tensor,
    queries: Tensor,
    *,
    noise_scale: float,
    kernel: Kernel = "gaussian",
    mask: Tensor | None = None,
    bandwidth: float = 1.0,
) -> Tensor:
    """GP posterior mean ``k_*^T (K + sigma^2 I)^-1 v``: CME attention with ``n lambda = sigma^2``.

    Args:
        keys: ``(B, L, dk)`` inputs of the observations.
        values: ``(B, L, dv)`` observed outputs (dv independent GPs with the same kernel).
        queries: ``(B, Q, dk)`` test inputs.
        noise_scale: Observation noise standard deviation sigma (> 0).
        kernel: The GP prior kernel, as in :func:`cme_attention`.
        mask: Bool ``(B, L)``, True = real token; None = all real.
        bandwidth: Gaussian kernel bandwidth (> 0).

    Returns:
        float64 tensor ``(B, Q, dv)``.
    """
    keys, values, queries, mask = _check_inputs(keys, values, queries, mask)
    sigma = _positive(noise_scale, "noise_scale")
    fn = _kernel_fn(kernel, _positive(bandwidth, "bandwidth"))
    total = torch.full((keys.shape[0],), sigma**2, dtype=torch.float64, device=keys.device)
    return _cme(keys, values, queries, mask, fn, total)


class LinearRegressionOracle(nn.Module):
    """CME attention with the desired parameter for the ``linear-regression`` model.

    Linear kernel on ``phi(k) = k`` and ``n_b lambda_b = sigma^2 / tau^2``; the output is
    the exact posterior predictive mean ``phi(q)^T mu_L`` for every L (docs/claims.md#p5).

    Args:
        model: A :class:`bayesattn.models.linear_regression.LinearRegression`.
    """

    def __init__(self, model: LinearRegression) -> None:
        super().__init__()
        if not isinstance(model, LinearRegression):
            raise OracleTypeError(
                "LinearRegressionOracle needs a 'linear-regression' model "
                f"(bayesattn.models.get('linear-regression')); got {model!r}."
            )
        self.model = model
        p = model.params
        self.total_ridge = float(p["noise_scale"] ** 2 / p["prior_scale"] ** 2)

    def predict(self, x: Tensor, queries: Tensor, mask: Tensor | None = None) -> Tensor:
        """Posterior predictive mean of v at each query.

        Args:
            x: Tokens ``(B, L, p + 1)``: keys in ``x[..., :p]``, values in ``x[..., p]``.
            queries: ``(B, Q, p)`` query features.
            mask: Bool ``(B, L)``, True = real token; None = all real.

        Returns:
            float64 tensor ``(B, Q)``.
        """
        x, mask = self.model.validate_tokens(x, mask)
        p = self.model.params["p"]
        keys, values, queries, mask = _check_inputs(x[..., :p], x[..., p:], queries, mask)
        total = torch.full((x.shape[0],), self.total_ridge, dtype=torch.float64,
                           device=x.device)
        return _cme(keys, values, queries, mask, _kernel_fn("linear", 1.0), total)[..., 0]

    forward = predict


class ConceptMixtureOracle(nn.Module):
    """Softmax attention with hand-set parameters whose output is the exact posterior.

    One attention head with a zero query map (equal logits, so the attention weights are
    ``1 / n`` on the n real tokens and 0 on padding) pools the values
    ``v_i = (log p(x_i | z=k))_{k=1..K}``; the readout is
    ``softmax(log w + L_eff * mean_i v_i)``. Works for any finite mixture with
    ``token_loglik`` (``concept-mixture``, ``unigram-mixture``). **(reconstruction)**

    Args:
        model: A finite mixture model (``bayesattn.models.get('concept-mixture')``).
        mode: ``"exact"`` (L_eff = the true number of real tokens: the exact posterior),
            ``"fixed-length"`` (L_eff = ``L0`` for every sequence: the length-unaware
            relative, exact only at L = L0) or ``"hard"`` (the temperature -> 0 limit:
            one-hot at the argmax of the mean log-likelihood, prior ignored).
        L0: The fixed length (> 0) used by ``"fixed-length"``; must be None otherwise.
    """

    def __init__(self, model: FiniteMixture, mode: str = "exact", *,
                 L0: float | None = None) -> None:
        super().__init__()
        if not isinstance(model, FiniteMixture):
            raise OracleTypeError(
                "ConceptMixtureOracle needs a finite mixture such as "
                f"bayesattn.models.get('concept-mixture'); got {model!r}."
            )
        if mode not in MODES:
            raise OracleInputError(f"mode must be one of {MODES}; got {mode!r}.")
        if mode == "fixed-length":
            if L0 is None:
                raise OracleInputError("mode='fixed-length' needs L0 > 0; got L0=None.")
            L0 = _positive(L0, "L0")
        elif L0 is not None:
            raise OracleInputError(
                f"L0 is only used by mode='fixed-length'; got L0={L0!r} with mode={mode!r}. "
                "Drop L0 or set mode='fixed-length'."
            )
        self.model, self.mode, self.L0 = model, mode, L0

    def extra_repr(self) -> str:
        return f"model={self.model!r}, mode={self.mode!r}, L0={self.L0!r}"

    def _pool(self, x: Any, mask: Any) -> tuple[Tensor, Tensor]:
        """Mean per-token log-likelihood ``(B, K)`` by uniform attention, and the count ``(B,)``."""
        x, mask = self.model.validate_tokens(x, mask)
        count = mask.sum(-1)
        if not bool((count > 0).all()):
            i = int((count == 0).nonzero()[0, 0])
            raise OracleInputError(
                f"sequence {i} has no real token (mask all False); every sequence needs at "
                "least one token for the attention average."
            )
        values = self.model.token_loglik(x).to(torch.float64)  # (B, L, K)
        values = torch.where(mask[..., None], values, 0.0)
        scores = torch.zeros(mask.shape, dtype=torch.float64, device=x.device)  # W_Q = 0
        scores = scores.masked_fill(~mask, float("-inf"))  # (B, L)
        attn = torch.softmax(scores, dim=-1)  # (B, L): 1/n on real tokens, 0 on padding
        pooled = torch.einsum("bl,blk->bk", attn, values)  # (B, K)
        return pooled, count.to(torch.float64)

    def represent(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """The sufficient representation ``(mean_i v_i, log L)``, whatever the mode.

        Args:
            x: Tokens ``(B, L, *token_shape)``.
            mask: Bool ``(B, L)``, True = real token; None = all real.

        Returns:
            float64 tensor ``(B, K + 1)``: the pooled mean log-likelihood of each concept
            and, in the last column, the log of the number of real tokens.
        """
        pooled, count = self._pool(x, mask)
        return torch.cat([pooled, count.log()[:, None]], dim=-1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Normalised posterior log-probabilities ``(B, K)`` (float64; -inf allowed in "hard")."""
        pooled, count = self._pool(x, mask)
        if self.mode == "hard":
            onehot = nn.functional.one_hot(pooled.argmax(-1), pooled.shape[-1])
            return onehot.to(torch.float64).log()
        length = count if self.mode == "exact" else torch.full_like(count, self.L0)
        log_w = self.model.tensor(self.model.params["weights"], pooled.device).log()
        joint = log_w + length[:, None] * pooled  # (B, K)
        evidence = joint.logsumexp(-1, keepdim=True)
        if not bool(torch.isfinite(evidence).all()):
            raise OracleInputError(
                "some sequence has zero (or non-finite) likelihood under every concept; "
                "check the tokens against the model parameters."
            )
        return joint - evidence

    def posterior(self, x: Tensor, mask: Tensor | None = None) -> torch.distributions.Categorical:
        """The oracle posterior over the K concepts.

        Args:
            x: Tokens ``(B, L, *token_shape)``.
            mask: Bool ``(B, L)``, True = real token; None = all real.

        Returns:
            ``Categorical`` with batch_shape ``(B,)`` (float64).
        """
        logp = self.forward(x, mask)
        if self.mode == "hard":
            return torch.distributions.Categorical(probs=logp.exp())
        return torch.distributions.Categorical(logits=logp)

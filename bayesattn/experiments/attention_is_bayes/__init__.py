"""Attention as E[value | key]: CME and softmax attention against exact predictive means (P5, P6).

P5, in-context Bayesian linear regression (``linear-regression``, p = 2 key features,
prior sd tau = 1, noise sd sigma = 0.5): at Q random query keys q ~ N(0, I_p) per
sequence, three attention readouts are compared with the exact posterior predictive mean
q^T mu_L, in units of the exact predictive sd sqrt(sigma^2 + q^T Sigma_L q):

- CME attention with the linear kernel and L lambda = sigma^2 / tau^2 (paper 1's desired
  parameter; no training): exact in theory, so its error must sit at float64 round-off;
- softmax attention with logits -||q - k||^2 / (2 h^2), i.e. the Gaussian-kernel
  Nadaraya-Watson smoother of the values. Bandwidth hand-set (no training) by Silverman's
  rule of thumb for N(0, I_p) keys at L0 = 64: h = (4 / (p + 2))^(1/(p+4)) L0^(-1/(p+4)) =
  0.5, fixed for every L; a second variant shrinks it at the same rate,
  h_L = 0.5 (L / 64)^(-1/(p+4));
- a Set Transformer (told L) with a full-covariance Gaussian posterior head, trained
  with the exact-KL objective on L in a training range; its readout is q^T E_q[z].

Errors are also reported in units of the posterior sd of the regression function,
sqrt(q^T Sigma_L q), which shrinks with L (docs/claims.md#caution). The log-log slope of
the softmax error against L is fitted with a bootstrap CI over sequences; no rate is
assumed.

P6, GP regression on 1-D inputs (our own simulator: k ~ U[0, 1], f ~ GP(0, RBF with
lengthscale 0.1, prior sd 1), v = f(k) + N(0, 0.3^2)): CME attention with the GP kernel
and L lambda = sigma^2 equals the GP posterior mean (checked against a direct solve);
softmax attention with the same kernel (h = lengthscale) and with the shrinking
bandwidth h_L = lengthscale (L / 16)^(-1/5) is compared with it. ||softmax - CME|| is the
RMS over Q uniform queries, in units of the prior sd; slope in L with bootstrap CI, and
the floor as the ratio of the error at the largest L to that at the smallest.
"""

from __future__ import annotations

from bayesattn.runner import Experiment, register

from .presets import (
    CME,
    CME_TOLERANCE,
    GP,
    LR_MODEL,
    NET,
    NET_TOLERANCE,
    PRESETS,
    SOFTMAX_FIXED,
    SOFTMAX_SHRINK,
    shrinking_bandwidth,
    silverman_bandwidth,
)
from .readouts import gp_mean_direct, rbf_kernel, simulate_gp, softmax_attention

#: The hand-set attention and simulation helpers are public: the attention_is_bayes
#: notebook and users reproducing P5/P6 call them.
__all__ = ["CME", "CME_TOLERANCE", "EXPERIMENT", "GP", "LR_MODEL", "NET", "NET_TOLERANCE",
           "PRESETS", "SOFTMAX_FIXED", "SOFTMAX_SHRINK", "gp_mean_direct", "rbf_kernel",
           "shrinking_bandwidth", "silverman_bandwidth", "simulate_gp", "softmax_attention"]

EXPERIMENT = register(Experiment.from_parts(
    __name__,
    name="attention-is-bayes",
    title="Attention as E[value | key]: CME and softmax attention vs exact predictive means",
    claims=("P5", "P6"),
    stages=("train", "regression", "gp", "slopes", "figure-data"),
))

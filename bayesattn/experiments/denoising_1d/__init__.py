"""1-D denoising with one hand-set attention layer (E1): which kernel filters best?

No training. Tokens are noisy scalars y_i = u_i + eta_i at positions i = 0 .. L-1 from
two signal families with an exact posterior mean: ``change-point`` (a piecewise-constant
sticky-HMM signal, E[u | y] by forward-backward) and ``gp-signal`` (a smooth
Gaussian-process signal, E[u | y] = W y with W = S (S + s^2 I)^-1). Every filter is one
self-attention layer with W_Q = W_K = W_V = I read as a Nadaraya-Watson smoother
u_hat = A y, A = softmax over j of the logits l_ij:

- ``spatial``: l_ij = -(i - j)^2 / (2 sigma^2) (a Gaussian blur, data independent);
- ``range``: l_ij = -(y_i - y_j)^2 / (2 h^2) (non-local means on the token values);
- ``sa+pe``: the entangled self-attention of a transformer with absolute positional
  encoding. The scalar token is embedded as y_i c with c = (1, .., 1) / sqrt(d) and the
  d-dimensional sinusoidal encoding p_i (``bayesattn.inference.sinusoidal_encoding``,
  d = ``pe_dim``) is added with weight omega: x_i = y_i c + omega p_i, and
  l_ij = beta x_i . x_j / sqrt(d) = beta (y_i y_j + omega y_i c.p_j + omega y_j c.p_i +
  omega^2 p_i.p_j) / sqrt(d). The cross terms entangle content and position; the content
  term is a dot product (not a distance), so large-|y| keys soak up weight. The layer's
  output is read out on the content (the value of token j is y_j);
- ``bilateral``: the product of the spatial and range kernels, l = spatial + range;
- ``bilateral+twicing``: (2A - A^2) y with the bilateral A;
- ``spatial+twicing``: (2A - A^2) y with the spatial A, a control: it tells the range
  factor's gain from the gain of twicing itself.

Bandwidths (sigma, h; beta and omega for sa+pe; the pair (sigma, h) for the bilateral
filters, an infinite bandwidth switching that factor off) are chosen per filter and
family by minimising the mean MSE to the clean signal over a separate tuning set of
sequences (a small grid). On the test sequences: MSE and PSNR to the clean signal u
(PSNR = 10 log10(R^2 / MSE) with R the family's nominal dynamic range: max - min of the
change-point levels, 4 x the GP amplitude) and MSE to the exact posterior mean, each
with a 95% bootstrap CI over sequences, plus the exact posterior mean itself as the
reference row. Paired bootstrap CIs of MSE(bilateral-type) - MSE(other) decide E1.
"""

from __future__ import annotations

from bayesattn.runner import Experiment, register

from .presets import (
    BILATERAL,
    FAMILIES,
    FILTER_PARAMS,
    FILTERS,
    METRICS,
    OTHERS,
    PRESETS,
    REFERENCE,
)

__all__ = ["BILATERAL", "EXPERIMENT", "FAMILIES", "FILTERS", "FILTER_PARAMS", "METRICS",
           "OTHERS", "PRESETS", "REFERENCE"]

EXPERIMENT = register(Experiment.from_parts(
    __name__,
    name="denoising-1d",
    title="1-D denoising with one attention layer: spatial, range, SA+PE, bilateral, twicing",
    claims=("E1",),
    stages=("tune", "evaluate"),
))

"""2-D patch denoising with a tiny trained transformer (E2): SA+PE vs bilateral attention.

Images are W x W patches of a Gaussian-process field (``gp-signal`` with ``grid_width =
W``: L = W^2 pixels in row-major order at grid positions p_i = (row, col), RBF kernel),
observed in white Gaussian noise: x = u + N(0, s^2 I). The exact posterior mean is the
linear smoother E[u | x] = W_post x, W_post = S (S + s^2 I)^-1 (``exact_posterior(x).mean``).

A tiny per-pixel denoiser is trained for each attention variant with the *same* budget
(steps, batch size, width, heads, layers, learning rate, training images and their order,
seeds): a linear embedding of the noisy pixel value, pre-norm
``bayesattn.inference.TransformerEncoder`` layers (standard residual), then LayerNorm and
a linear readout per token. The loss is the MSE to the clean image u, whose minimiser over
all functions of x is the posterior mean, so the MSE to ``E[u | x]`` measures how far each
variant is from the Bayes-optimal denoiser. Variants:

- ``sa+pe``: softmax attention, absolute sinusoidal 2-D encoding added to the embeddings
  (one block of channels per coordinate): content and position entangled;
- ``sa``: softmax attention without positions (control: a set model, blind to geometry);
- ``bilateral``: bilateral self-attention, logits q.k / sqrt(d_h) - ||p_i - p_j||^2 /
  (2 sigma_h^2) with a learned bandwidth per head, no additive encoding (separable);
- ``bilateral+twicing``: the same bilateral kernel with twicing, (2A - A^2) V.

Test images are fresh. Per variant: MSE and PSNR (peak = 4 x GP amplitude) to the clean
image and MSE to the exact posterior mean, each a mean over test images with a 95%
bootstrap CI, and the paired per-image difference MSE(variant) - MSE(sa+pe) with its
bootstrap CI; the exact posterior mean and the noisy input are reference rows. With
several training seeds the per-seed estimates are combined by
``bayesattn.runner.combine_replicates`` (the CI then also covers training-seed variability).
The comparison is at a fixed, equal training budget: a variant that converges more
slowly is judged where the budget ends (the training-curve figure shows which variants
have plateaued; the ``full`` preset trains about 100x longer).

Paper 2 (Abdullaev, Tkachenko, Nguyen, arXiv 2506.10371) expects bilateral attention to
denoise at least as well as SA+PE; its formulation here is our reconstruction (see
docs/claims.md#e2; only the abstract and core equations were available).
"""

from __future__ import annotations

from bayesattn.runner import Experiment, register

from .presets import (
    BASELINE,
    BILATERAL,
    METRICS,
    NONINFERIORITY,
    PRESETS,
    REFERENCES,
    VARIANT_CONFIG,
    VARIANTS,
)

__all__ = ["BASELINE", "BILATERAL", "EXPERIMENT", "METRICS", "NONINFERIORITY", "PRESETS",
           "REFERENCES", "VARIANTS", "VARIANT_CONFIG"]

EXPERIMENT = register(Experiment.from_parts(
    __name__,
    name="denoising-2d",
    title="2-D patch denoising with a tiny trained transformer: SA+PE vs bilateral attention",
    claims=("E2",),
    stages=("train", "evaluate", "summarise"),
))

"""Trained per-token attention denoisers on change-point signals: length extrapolation of
positional variants (E7) and learned attention rows vs the exact posterior
co-segmentation (E8).

Paper 2's formulation (attention as a bilateral image filter; bilateral self-attention as a
separable spatial x range kernel) is our reconstruction (docs/claims.md#e7): its full text was
not available. Model: ``change-point`` (a sticky HMM with K known levels, Gaussian noise,
``bayesattn.models.get_sequence("change-point", ...)``). Tokens are the noisy values x_i at
positions i = 0 .. L-1; the exact posterior mean E[u_i | x], variance Var[u_i | x] and the
co-segmentation matrix P(s_i = s_j | x) come from forward-backward (float64).

**Networks.** A per-token denoiser: the scalar token is embedded linearly, passed through a
pre-norm ``TransformerEncoder`` (``.tokens``: per-token outputs, no pooling), then
LayerNorm and a linear readout of E[u_i | x]. It is trained with the MSE to the *exact
posterior mean* (a Rao-Blackwellised target: same minimiser as the MSE to the clean signal,
lower variance) by a private AdamW loop (fixed steps, cosine learning rate, minibatches
drawn from a fixed pool of simulated L = ``train_len`` sequences, everything seeded). The
positional variants share width, depth, heads, steps and data:
``none`` (no positions: a set model, the control; it can only group tokens by value),
``sinusoidal`` (absolute encoding added to the embeddings: spatial and range kernels
entangled), ``bilateral`` (``positional="relative"``, separable bilateral kernel, Gaussian
spatial term -(i-j)^2 / (2 sigma_h^2), dot-product range, learnable sigma_h per head),
``alibi`` (the same with a Laplacian spatial term -|i-j| / sigma_h) and
``bilateral-distance`` (Gaussian spatial, distance range -||q-k||^2 / (2 sqrt(d_h)))).

**E7.** Each network, trained at L = ``train_len`` only, is tested on fresh sequences at
every L in ``test_lengths``: per-sequence MSE to the exact posterior mean (also divided by
the mean posterior variance, a ratio of means) and MSE to the clean signal (with the exact
posterior mean's own MSE as the floor), 95% percentile-bootstrap CIs over sequences.
Paired bootstrap CIs of MSE(bilateral) - MSE(v) at each L (same sequences), and of the
difference in increase from the training length, [MSE_b(L) - MSE_v(L)] - [MSE_b(L0) -
MSE_v(L0)] (two independent sets of sequences: the two paired standard errors are added in
quadrature, normal 95% interval).

**E8.** On fresh sequences at each L in ``attention_lengths``, every learned attention row
(first and last layer; each head and the head average) is compared with the exact
co-segmentation row normalised to sum to 1, p_i(j) = P(s_i = s_j | x) / sum_j' P(s_i = s_j'
| x) (s_i is the *level* index, shared by all segments at that level, so the row does not
vanish far from i: the ideal range kernel is non-local): KL(p_i || a_i) (attention clamped
at 1e-12 and renormalised) and the Spearman rank correlation of the two rows, averaged over
rows per sequence, bootstrap CIs over sequences. Baselines: the uniform row (KL only; its
rank correlation is undefined), the spatial-only factor of each relative network at its
*learned* bandwidths (head-averaged rows for the head average), a Gaussian spatial kernel
with the bandwidth that minimises the mean KL on a separate tuning set, and the oracle
attention proportional to the co-segmentation (KL 0, rank correlation 1 by construction).
Exact posterior draws of the signal (forward filtering, backward sampling) for a few test
sequences are saved as InferenceData.
"""

from __future__ import annotations

from bayesattn.runner import Experiment, register

from .presets import (
    BASELINES,
    CLAIMED,
    PRESETS,
    REFERENCE,
    RELATIVE,
    TOLERANCE_FRACTION,
    VARIANTS,
)

__all__ = ["BASELINES", "CLAIMED", "EXPERIMENT", "PRESETS", "REFERENCE", "RELATIVE",
           "TOLERANCE_FRACTION", "VARIANTS"]

EXPERIMENT = register(Experiment.from_parts(
    __name__,
    name="change-point-attention",
    title="Trained attention denoisers on change-point signals: length extrapolation by "
          "positional variant (E7) and attention vs exact co-segmentation (E8)",
    claims=("E7", "E8"),
    stages=("train", "evaluate", "attention"),
))

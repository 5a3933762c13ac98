"""Contaminated exchangeable mixtures (E5): which attention kernel degrades least?

No training. Two finite mixtures with one class z per sequence, ``concept-mixture``
(Gaussian tokens in R^d) and ``unigram-mixture`` (word tokens), are contaminated with
``bayesattn.models.contaminate``: each token is replaced with probability ε by an outlier
(``kind="outlier"``: a N(0, 10^2 I) point / a uniformly random word) or by a token of
another class (``kind="swap"``). Two exact Categorical posteriors over z serve as ground
truth on the same contaminated tokens: the ε-contamination model's (the right target)
and the clean model's (misspecified); the distance between the two is the
misspecification cost. The test sequences of every ε share their seed, so the
contaminated sets are nested (the ε = 0 sequence is the clean version of each ε > 0 one)
and every comparison across ε and across kernels is paired by sequence.

The readout (one hand-set attention layer; only its kernel varies). Paper 1's oracle
(``ConceptMixtureOracle``) writes the exact clean posterior as an attention readout:
uniform attention pools the per-token values v_i = (log p(x_i | z = k))_k and
``softmax(log w + L mean_i v_i)`` is p(z | X). Here each token is embedded as its centred
value vector u_i = v_i - mean_k v_ik in R^K (the softmax ignores the centring), scaled
by a per-model constant s (the RMS within-sequence spread of u on the clean tuning set).
One self-attention layer with W_Q = W_K = W_V = I on e_i = u_i / s gives a smoother W
(L x L), each token reads out its own posterior p_i = softmax(log w + L (W u)_i) (a
position-wise head) and the sequence estimate is their mean, p_hat = mean_i p_i (the
oracle's uniform pooling). With uniform W every p_i is the exact clean posterior. The
kernels (all through ``bayesattn.inference`` kernels, float64):

- ``softmax``: dot product, logits beta e_i . e_j (beta = 0: uniform);
- ``gaussian``: distance (non-local means), logits -||e_i - e_j||^2 / (2 h^2);
- ``bilateral``: ``BilateralKernel(range="distance")``; a set has no positions, so all
  tokens get the same position, the spatial term vanishes and only the range kernel is
  left (it coincides with ``gaussian``; it is computed through the bilateral code path
  so that this is measured, not assumed);
- ``twicing-softmax`` / ``twicing-gaussian``: ``TwicingKernel``, (2A - A^2) V on either;
- ``cme``: kernel conditional mean embedding with a Gaussian kappa of bandwidth h and
  ridge lambda, W = kappa(e, e) (G + L lambda I)^-1 (rows need not sum to one);
- ``uniform``: the reference, W = 1/L, which *is* the clean posterior.

Tuning. Every kernel has the uniform readout as a limit (beta -> 0, h -> inf), and the
uniform readout is exact on clean data (the token mean is sufficient), so minimising
the clean error would send every kernel to the same uniform limit. As robust
statistics tunes an estimator to a fixed efficiency at the clean model (Huber's k for
95% efficiency), each kernel gets the most selective grid point (smallest mean
normalised participation ratio n_eff = (sum_j |W_ij|)^2 / sum_j W_ij^2 over query
rows; L for uniform weights, 1 for one-hot) whose mean TV to the exact posterior on a
clean tuning set (ε = 0) stays within a budget ``clean_tv_budget``; the bandwidths are
then frozen, so robustness is measured out of sample.

Measured per (model, kind, ε, kernel), with 95% bootstrap CIs over sequences: TV and
KL(p_ε || p_hat) to the ε-model posterior p_ε, TV to the clean posterior, the squared
error of the posterior mean of the class parameter (concept mean mu_z or word
distribution of topic z) to its ε-model and clean-model values, and the attention
weight that clean query tokens put on replaced keys (share of sum_j |W_ij|, averaged
over the sequences with at least one replaced token; uniform weighting gives their
replaced fraction, which exceeds ε at small ε for that reason). The uniform readout's
errors are the misspecification cost (how far the clean posterior is from p_ε).
Degradation = TV_ε(ε_max) - TV_ε(0)
per sequence, and paired differences of degradation against the dot-product softmax
decide E5. Paper 2's formulation (bilateral/twicing attention, the ε-contamination
reading) is our reconstruction (docs/claims.md#e5); its full text was not available.
"""

from __future__ import annotations

from bayesattn.runner import Experiment, register

from .presets import (
    DISTANCE_TYPE,
    DOT_TYPE,
    KERNEL_PARAMS,
    KERNELS,
    KINDS,
    METRICS,
    PRESETS,
    UNIFORM,
)

__all__ = ["DISTANCE_TYPE", "DOT_TYPE", "EXPERIMENT", "KERNELS", "KERNEL_PARAMS", "KINDS",
           "METRICS", "PRESETS", "UNIFORM"]

EXPERIMENT = register(Experiment.from_parts(
    __name__,
    name="contamination-attention",
    title="ε-contaminated mixtures: attention kernels vs exact clean and ε-model posteriors",
    claims=("E5",),
    stages=("tune", "evaluate", "posteriors"),
))

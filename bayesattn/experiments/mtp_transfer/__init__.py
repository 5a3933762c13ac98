"""Masked-token pretraining transfer: the condition number (P9) and the pretext blind spot (P10).

**P9 (condition number, reconstruction).** A family of ``unigram-mixture`` models (K = 3
topics, V = 20 words, Dirichlet(0.5) rows ``A0`` drawn with ``param_seed = 0``) whose
topics get closer: ``A_x(c) = (1 - c) A0 + c 1 m'`` with ``m`` the mean row, so
``sigma_min(A_x'U)`` shrinks as ``(1 - c)`` and ``kappa_2(c) = kappa_2(0) / (1 - c)``
exactly. At each closeness c a Set Transformer is pretrained by full masked-token
prediction (``bayesattn.gaps.masked_token_transfer``), frozen, and a linear probe predicts
y from its representation. Measured: the pretext excess risk (nats per hidden token over
the exact Bayes risk), the downstream excess risk (nats per sequence over the exact Bayes
risk) and the downstream head's floor: the excess risk of the same linear probe, fitted on
the same probe and test sequences, on a representation of the same width that holds the
exact log predictive of y (padded with independent noise columns). A linear softmax probe
on log P(y | X) can express P(y | X) exactly, so this floor is the probe's finite-sample
estimation error alone (~ width / probe sequences), which no representation can remove;
the downstream excess the representation is responsible for is the excess *net of the
floor*, and that is what the bound is about.

The reconstruction's bound "downstream <~ kappa x pretext" is tested with the constant
C = 1 through its slack ``S = (downstream - floor) - C kappa_2 pretext`` at each closeness
(95% CI from the three standard errors): the bound is *violated* where S's CI lies above 0
(the downstream excess is clearly larger than the bound allows, however small the pretext
excess may be within its CI) and *verified* where S's CI lies below 0. A pretext network at
its Bayes risk (pretext excess CI reaching 0: the denominator of the ratio is zero) can
only refute the bound through a clearly positive downstream excess; otherwise both sides
are at 0 and the ratio is undefined. The ratio ``(downstream - floor) / pretext`` (parametric
bootstrap, the standard errors drawn independently: conservative when they are positively
correlated) and its Spearman correlation with kappa_2 are reported; "transfer worsens as
kappa_2 grows" is only tested when every pretext excess is resolved from 0. Verdict:
supported if S < 0 at every closeness and the correlation is > 0 (CIs); not supported if
S > 0 at some closeness, or the correlation is < 0 with every ratio defined; else
inconclusive.

**P10 (pretext blind spot).** ``concept-mixture`` with K = 3 Gaussian concepts in 2-D (on a
circle of radius 2, unit token noise). The coarse pretext predicts only the sign of the
first coordinate of a hidden token, which has the same law under concepts 1 and 2, so it
is blind to the posterior direction separating them (``kappa_2 = inf``); the full pretext
predicts the whole token. Each is pretrained on N = steps x batch fresh sequences, and the
downstream excess risk of y is read out two ways from the same frozen network: a linear
probe on the encoder's pooled representation (what ``masked_token_transfer`` measures)
and an MLP probe on the pretext predictive itself (the transfer mechanism of the
condition-number argument: downstream = function of the learned pretext predictive).
Slopes of log excess risk on log N come with parametric-bootstrap CIs; no rate is assumed.
"""

from __future__ import annotations

from bayesattn.runner import Experiment, register

from .presets import (
    BLIND_TOL,
    BOUND_C,
    HEAD_TOL,
    P9_MODEL,
    P10_MODEL,
    PRESETS,
    PRETEXT_TOL,
    PRETEXTS,
    READOUTS,
    closeness_word_probs,
)

__all__ = ["BLIND_TOL", "BOUND_C", "EXPERIMENT", "HEAD_TOL", "P9_MODEL", "P10_MODEL", "PRESETS",
           "PRETEXTS", "PRETEXT_TOL", "READOUTS", "closeness_word_probs"]

EXPERIMENT = register(Experiment.from_parts(
    __name__,
    name="mtp-transfer",
    title="Masked-token pretraining transfer: condition number and pretext blind spot",
    claims=("P9", "P10"),
    stages=("kappa", "closeness", "blindspot", "summary"),
))

"""bayesattn.inference: ground-truth posteriors and amortized attention posteriors.

Ground truth:
    ``reference_posterior(model, x, method="auto"|"exact"|"nuts"|"pyro-nuts")`` returns a
    :class:`Reference` with ``sample`` and ``draws``, the properties ``mean``, ``stddev``
    and ``variance`` (as on torch distributions), ``log_prob`` (exact only), ArviZ
    ``idata``, per-dataset ``diagnostics`` and a ``converged`` gate.

Amortized inference:
    :class:`AmortizedPosterior` (a set encoder - Set Transformer, transformer without
    positional encoding, or DeepSets - plus a posterior head) and :func:`train`.
    ``bayesattn.inference.oracle`` holds paper 1's hand-set attention (CME attention,
    the concept-mixture oracle).

Attention building blocks:
    :class:`MultiHeadAttention` with pluggable kernels (``make_kernel``,
    ``register_kernel``), the encoders (``make_encoder``) and heads (``make_head``,
    ``fitting_kinds``).

Extending: kernels, encoders and posterior heads are each kept in a registry
(``KERNELS``, ``ENCODERS``, ``HEADS``; like ``OBJECTIVES``): a new one is one subclass
(of :class:`AttentionKernel`, :class:`SetEncoder`, :class:`PosteriorHead`) with
``@KERNELS.register("name")`` / ``@ENCODERS.register("name")`` /
``@HEADS.register("name")`` above it, and is then built by name everywhere
(``AmortizedPosterior(model, encoder="name", head="name")``, save and load included).
    Paper 2's filtering variants: ``BilateralKernel`` ("bilateral"), ``TwicingKernel``
    ("twicing"), ``sinusoidal_encoding`` and the ``residual`` / ``positional`` options
    of ``TransformerEncoder``.
"""

from bayesattn._files import DamagedFileError
from bayesattn._threads import available_cores, resolve_threads, torch_threads

from . import oracle
from ._amortized import AmortizedPosterior
from ._attention import (
    KERNELS,
    AttentionConfig,
    AttentionInputError,
    AttentionKernel,
    CMEKernel,
    GaussianKernel,
    LogitKernel,
    MultiHeadAttention,
    SoftmaxKernel,
    kernel_names,
    make_kernel,
    register_kernel,
)
from ._config import TrainConfig
from ._diagnostics import DEFAULT_GATE, ConvergenceGate, per_dataset_diagnostics
from ._encoders import (
    DEFAULT_ENCODER_OPTIONS,
    ENCODERS,
    DeepSets,
    SetEncoder,
    SetTransformer,
    TransformerEncoder,
    make_encoder,
)
from ._featurize import TokenFeaturizer
from ._filtering import BilateralKernel, TwicingKernel, sinusoidal_encoding
from ._ground_truth import METHODS, reference_posterior
from ._heads import HEADS, HeadError, PosteriorHead, fitting_kinds, make_head
from ._objectives import (
    NPE,
    OBJECTIVES,
    ExactKL,
    MaskedTokens,
    Objective,
    Supervised,
)
from ._predictive import PredictiveHead
from ._reference import Reference, UnconvergedReferenceError
from ._train import (
    LENGTH_DISTRIBUTIONS,
    TrainingDivergedError,
    TrainResult,
    fixed_training_set,
    load_checkpoint,
    train,
    training_lengths,
)

__all__ = [
    "DEFAULT_ENCODER_OPTIONS",
    "DEFAULT_GATE",
    "LENGTH_DISTRIBUTIONS",
    "METHODS",
    "AmortizedPosterior",
    "AttentionConfig",
    "AttentionKernel",
    "BilateralKernel",
    "CMEKernel",
    "ConvergenceGate",
    "DamagedFileError",
    "DeepSets",
    "GaussianKernel",
    "LogitKernel",
    "MultiHeadAttention",
    "PosteriorHead",
    "Reference",
    "SetTransformer",
    "SoftmaxKernel",
    "TrainResult",
    "TrainingDivergedError",
    "TransformerEncoder",
    "TwicingKernel",
    "UnconvergedReferenceError",
    "kernel_names",
    "make_encoder",
    "make_head",
    "make_kernel",
    "oracle",
    "per_dataset_diagnostics",
    "reference_posterior",
    "register_kernel",
    "sinusoidal_encoding",
    "train",
    "fixed_training_set",
    "load_checkpoint",
    "available_cores",
    "resolve_threads",
    "torch_threads",
    "training_lengths",
    "PredictiveHead",
    "SetEncoder",
    "TokenFeaturizer",
    "TrainConfig",
    "OBJECTIVES",
    "KERNELS",
    "ENCODERS",
    "HEADS",
    "AttentionInputError",
    "HeadError",
    "fitting_kinds",
    "NPE",
    "ExactKL",
    "MaskedTokens",
    "Objective",
    "Supervised",
]

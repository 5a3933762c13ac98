"""bayesattn.models: the model zoo of exchangeable latent-variable models.

Each model is written twice, in Pyro and in NumPyro, side by side in one file;
``simulate`` runs the Pyro program; ``exact_posterior`` gives the closed-form or
enumerated posterior where one exists.

The zoo is the registry :data:`MODELS` (``names()``, ``get(name, **params)``,
``@register``); positional (non-exchangeable) ground truths for the filtering
experiments live beside it in their own, :data:`SEQUENCE_MODELS`
(``sequence_names()``, ``get_sequence``, ``@register_sequence``): ``change-point``
(sticky HMM, forward-backward) and ``gp-signal`` (GP prior, linear-Gaussian). Both
are :class:`bayesattn._registry.Registry` instances, the project's one extension
idiom. ``contaminate(model, epsilon, kind)`` turns a finite mixture into
its ε-contamination model.

>>> from bayesattn import models
>>> m = models.get("beta-bernoulli")
>>> batch = m.simulate(4, 16, seed=0)
>>> m.exact_posterior(batch.x).batch_shape
torch.Size([4])
"""

# The zoo: importing a module registers its models.
from . import (  # noqa: F401, E402  (importing registers; names() sorts)
    beta_bernoulli,
    change_point,
    concept_mixture,
    dirichlet_categorical,
    gamma_poisson,
    gp_signal,
    linear_regression,
    logistic_regression,
    normal_inverse_gamma,
    normal_mean,
    topic_admixture,
    unigram_mixture,
)
from ._base import ExchangeableModel
from ._errors import ModelInputError, NoExactPosterior, UnknownModelError
from ._mixture import FiniteMixture
from ._registry import MODELS, get, names, register, unregister
from ._sequence import (
    SEQUENCE_MODELS,
    SequenceModel,
    get_sequence,
    register_sequence,
    sequence_names,
)
from ._setbatch import SetBatch
from ._validation import check_mask
from .change_point import ChangePoint, ChangePointPosterior
from .contamination import ContaminatedBatch, ContaminatedMixture, contaminate
from .gp_signal import GPSignal

__all__ = [
    "MODELS",
    "SEQUENCE_MODELS",
    "ChangePoint",
    "ChangePointPosterior",
    "ContaminatedBatch",
    "ContaminatedMixture",
    "ExchangeableModel",
    "GPSignal",
    "ModelInputError",
    "NoExactPosterior",
    "SequenceModel",
    "SetBatch",
    "UnknownModelError",
    "contaminate",
    "get",
    "get_sequence",
    "names",
    "register",
    "register_sequence",
    "sequence_names",
    "unregister",
    "FiniteMixture",
    "check_mask",
]

"""bayesattn.models: the model zoo of exchangeable latent-variable models.

Each model is written twice, in Pyro and in NumPyro, side by side in one file;
``simulate`` runs the Pyro program; ``exact_posterior`` gives the closed-form or
enumerated posterior where one exists.

>>> from bayesattn import models
>>> m = models.get("beta-bernoulli")
>>> batch = m.simulate(4, 16, seed=0)
>>> m.exact_posterior(batch.x).batch_shape
torch.Size([4])
"""

# The zoo: importing a module registers its models.
from . import (  # noqa: F401, E402  (importing registers; names() sorts)
    beta_bernoulli,
    concept_mixture,
    dirichlet_categorical,
    gamma_poisson,
    linear_regression,
    logistic_regression,
    normal_inverse_gamma,
    normal_mean,
    topic_admixture,
    unigram_mixture,
)
from ._base import ExchangeableModel
from ._errors import ModelInputError, NoExactPosterior, UnknownModelError
from ._registry import get, names, register, unregister
from ._setbatch import SetBatch

__all__ = [
    "ExchangeableModel",
    "ModelInputError",
    "NoExactPosterior",
    "SetBatch",
    "UnknownModelError",
    "get",
    "names",
    "register",
    "unregister",
]

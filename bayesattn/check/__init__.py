"""Posterior checks for people and for tests: is this *the* Bayesian answer?

Each check simulates sequences from a model (seeded; the global torch RNG is left
alone), runs the candidate, compares it with the ground truth and returns a
:class:`CheckResult` (truthy when it passed) whose ``message`` says what was expected,
what was got and where.

- :func:`check_posterior` / :func:`assert_posterior_close`: a candidate posterior
  ``x -> q(z | x)`` against the exact posterior (mean KL in nats) or the gated NUTS
  reference (energy coefficient or C2ST from draws).
- :func:`check_attention_is_bayes`: attention against its Bayesian target: CME
  attention = the Bayesian linear-regression predictive mean (``task="cme"``), or an
  attention readout = the exact concept-mixture posterior (``task="concept-mixture"``).
- :func:`check_sufficient`: a representation ``x -> (B, p)`` from which a probe
  recovers the exact posterior's predictions of y (excess risk over the Bayes risk).

Bad *candidates* (they raise, or return the wrong type, shape, support, NaN...) give
a FAILED result with a clear message; bad *arguments of the check* (unknown model
name, ``seq_len < 1``, ``tol <= 0``) raise ``ValueError`` / ``TypeError``.

>>> from bayesattn import models
>>> from bayesattn.check import check_posterior
>>> m = models.get("concept-mixture")
>>> result = check_posterior(m.exact_posterior, m, num_sequences=8, seq_len=8)
>>> bool(result), result.statistic < 1e-12
(True, True)
>>> print(result.message)  # doctest: +ELLIPSIS
check_posterior passed (concept-mixture): mean KL(exact || candidate) [nats] = ... <= tol 0.05 ...
"""

from ._args import CheckArgumentError, CheckTypeError
from ._attention import TASKS, check_attention_is_bayes
from ._posterior import assert_posterior_close, check_posterior
from ._result import CheckResult, WorstCase
from ._sufficient import check_sufficient

__all__ = [
    "TASKS",
    "CheckArgumentError",
    "CheckResult",
    "CheckTypeError",
    "WorstCase",
    "assert_posterior_close",
    "check_attention_is_bayes",
    "check_posterior",
    "check_sufficient",
]

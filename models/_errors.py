"""Errors raised by the model zoo.

They subclass the built-in exception a caller would catch anyway
(``ValueError`` for bad input, ``NotImplementedError`` for a missing closed
form), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class ModelInputError(ValueError):
    """Tokens, masks or latents that do not fit a model.

    The message names what was expected, what was received and how to fix it.
    """


class NoExactPosterior(NotImplementedError):
    """The model has no closed-form posterior; use MCMC (``method="nuts"``)."""


class UnknownModelError(KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly.
        return str(self.args[0]) if self.args else ""

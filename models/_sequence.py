"""``SequenceModel``: ground-truth models whose tokens have positions (not exchangeable).

The filtering experiments of paper 2 (docs/claims.md#paper-2) need signals, not sets: a
piecewise-constant signal with a latent segmentation (``change-point``) and a
Gaussian-process signal (``gp-signal``). Their latent is one value *per token*
(``z`` of shape ``(B, L)``) and permuting the tokens changes the model, so they
do not subclass :class:`~bayesattn.models.ExchangeableModel` and are kept out of
its registry: ``models.names()`` / ``models.get()`` (and every engine and test
that iterates over them: amortized heads, permutation-invariance checks, NUTS
references) see only exchangeable models. Sequence models have their own registry,
:data:`SEQUENCE_MODELS` (a :class:`bayesattn._registry.Registry`, like ``MODELS``),
used through :func:`register_sequence`, :func:`sequence_names` and :func:`get_sequence`.

Shared layout (the same ``SetBatch`` as the zoo)::

    z  (B, L)   latent per position (the state sequence / the clean signal u)
    x  (B, L)   noisy observations, one scalar per position (token_shape = ())
    y  (B, L)   the clean signal u_i (the denoising target)
    mask (B, L) True = observed position

A subclass sets ``name`` and implements ``pyro_model`` / ``numpyro_model``,
``_collect(trace)`` and ``log_joint``.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np
import torch
from torch.distributions import constraints

from bayesattn._registry import Registry

from ._base import trace_program
from ._errors import UnknownModelError
from ._setbatch import SetBatch
from ._validation import check_tokens


class SequenceModel(abc.ABC):
    """Base of the positional (non-exchangeable) ground-truth models.

    Class attributes:
        name: Registry name, e.g. ``"change-point"``.
        exchangeable: Always False; lets generic code tell these models apart.

    Instance attributes:
        params: Dict of the fixed parameters (JSON-serialisable).
        token_shape: ``()`` (one real observation per position).
    """

    name: ClassVar[str] = ""
    exchangeable: ClassVar[bool] = False
    token_support: constraints.Constraint = constraints.real
    token_shape: tuple[int, ...] = ()

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = dict(params)

    @staticmethod
    def tensor(value: Any, device: torch.device | str | None = None) -> torch.Tensor:
        """A fixed parameter as a float64 tensor on ``device``."""
        return torch.as_tensor(np.asarray(value, dtype=np.float64), device=device)

    def validate_tokens(self, x: Any, mask: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Check observations ``(B, L)`` and mask; return float64 ``x`` and bool ``mask``.

        Padded positions are set to 0 (they never enter a likelihood).
        """
        x, mask = check_tokens(x, mask, token_shape=(), support=self.token_support,
                               model_name=self.name)
        return x.to(torch.float64), mask

    @abc.abstractmethod
    def pyro_model(self, x=None, *, num_sequences: int, seq_len: int, mask=None,
                   device=None):
        """The generative program in Pyro."""

    @abc.abstractmethod
    def numpyro_model(self, x=None, *, num_sequences: int, seq_len: int, mask=None):
        """The NumPyro twin of :meth:`pyro_model`."""

    @abc.abstractmethod
    def _collect(self, trace, num_sequences: int, seq_len: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(z, x, y)`` from a trace of :meth:`pyro_model`."""

    def simulate(self, num_sequences: int, seq_len: int, *, seed: int,
                 device: torch.device | str | None = None) -> SetBatch:
        """Draw ``(z, x, y)`` by running the Pyro program with a private, seeded RNG.

        Args:
            num_sequences: B >= 1.
            seq_len: L >= 1.
            seed: Integer seed (the global torch RNG state is restored afterwards).
            device: Where to simulate (``None`` = CPU).

        Returns:
            :class:`SetBatch` with ``z (B, L)``, ``x (B, L)``, ``y (B, L)`` (the clean
            signal) and an all-True mask.
        """
        tr = trace_program(self.pyro_model, num_sequences, seq_len, seed, device)
        z, x, y = self._collect(tr, int(num_sequences), int(seq_len))
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        return SetBatch(z=z, x=x, y=y, mask=mask)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


#: The positional (non-exchangeable) models (name -> :class:`SequenceModel` subclass).
SEQUENCE_MODELS: Registry[type[SequenceModel]] = Registry(
    "sequence model", error=UnknownModelError, base=SequenceModel, own_name=True,
    hint="Exchangeable models are in bayesattn.models.names() / models.get().")


def register_sequence(cls: type[SequenceModel]) -> type[SequenceModel]:
    """Class decorator: make ``cls`` available as ``get_sequence(cls.name)``.

    Registering the same class again (a reloaded module) is allowed.

    Raises:
        TypeError: ``cls`` is not a ``SequenceModel`` subclass.
        ValueError: ``cls.name`` is empty or already taken by another class.
    """
    return SEQUENCE_MODELS.register(None, cls)


def sequence_names() -> list[str]:
    """Registered positional (non-exchangeable) model names, sorted."""
    return SEQUENCE_MODELS.names()


def get_sequence(name: str, **params: Any) -> SequenceModel:
    """Build the positional model registered as ``name`` with fixed parameters ``params``.

    Raises:
        UnknownModelError: no such model (the message lists close matches and the
            known sequence models).
    """
    return SEQUENCE_MODELS.get(name)(**params)

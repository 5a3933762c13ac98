"""Training objectives as objects: what :func:`~bayesattn.inference.train` minimises.

``train(..., objective="npe")`` and ``train(..., objective=NPE())`` are the same; an
object carries its own settings (``ExactKL(samples=64)``, ``MaskedTokens(fraction=0.5)``),
in the spirit of NumPyro's ``SVI(loss=Trace_ELBO())``. The built-in objectives:

- ``"npe"`` (:class:`NPE`): minimise -log q(z | x) with z simulated jointly with x.
- ``"kl"`` (:class:`ExactKL`): minimise KL(p(z | x) || q(z | x)) against the exact
  posterior (analytic for categorical latents, else Monte Carlo with draws from p);
  needs ``model.has_exact_posterior``. Lower variance than NPE.
- ``"supervised"`` (:class:`Supervised`): minimise -log p(y | x) with the target head.
- ``"mtp"`` (:class:`MaskedTokens`): masked-token prediction (self-supervised): hide a
  fraction of each sequence's real tokens (at least one, never all) and minimise
  -log p(x_hidden | x_visible) with the token head; needs at least 2 tokens.

Adding one: subclass :class:`Objective` in one file, register it, and pass its name or
an instance to ``train`` (docs/architecture.md shows a complete example)::

    @OBJECTIVES.register("npe-l2")
    class NPEWithL2(Objective):
        output = "posterior"
        def loss(self, net, q, batch, hidden):
            z = batch.z.float()
            penalty = sum((p ** 2).sum() for p in net.head.parameters())
            return -q.log_prob(z).mean() + 1e-4 * penalty, math.nan
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from bayesattn._checks import check_int
from bayesattn._registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from bayesattn.models import ExchangeableModel, SetBatch

#: A :class:`~bayesattn.inference.TrainConfig` (typed loosely here: the config module
#: imports this one, and the objectives need only read its fields).
TrainConfig = Any

#: What a network can output; an objective trains exactly one of them (the other heads
#: are frozen for the call).
OUTPUTS = ("posterior", "target", "token")


class Objective:
    """Base class of a training objective.

    A subclass sets ``output`` (the network output it trains: ``"posterior"``,
    ``"target"`` or ``"token"``) and implements :meth:`loss`. It may override
    :meth:`check` (refuse a model or configuration before training starts),
    :meth:`hide` (tokens the network must not see at a step) and :meth:`settings`
    (what a resumed run must match). Registered objectives are also built by name, via
    :meth:`from_config`.
    """

    name: ClassVar[str] = ""
    output: ClassVar[str] = "posterior"

    @classmethod
    def from_config(cls, config: TrainConfig) -> Objective:
        """The objective ``objective=<name>`` means, with the config's settings."""
        return cls()

    def check(self, model: ExchangeableModel, config: TrainConfig) -> None:
        """Raise ``ValueError`` when the objective cannot train on ``model`` with ``config``."""

    def hide(self, batch: SetBatch, seed: int) -> torch.Tensor | None:
        """Bool ``(B, L)`` of real tokens the network must not see at this step, or None."""
        return None

    def loss(self, net: Any, q: Any, batch: SetBatch, hidden: torch.Tensor | None
             ) -> tuple[torch.Tensor, float]:
        """``(loss to minimise, KL estimate or NaN)`` for one step.

        Args:
            net: The :class:`~bayesattn.inference.AmortizedPosterior` being trained.
            q: What the network output for the batch (a distribution with batch ``(B,)``;
                for ``"token"``, one over the tokens with batch ``(L, B)``).
            batch: The step's :class:`~bayesattn.models.SetBatch`.
            hidden: What :meth:`hide` returned.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement loss()")

    def settings(self) -> dict[str, Any]:
        """Settings recorded with a checkpoint: resuming with others is refused."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({args})"


def _check_objective(name: str, cls: Any) -> None:
    if cls.output not in OUTPUTS:
        raise ValueError(f"objective {name!r}: output must be one of {OUTPUTS}; got "
                         f"{cls.output!r}")


#: The registered objectives (name -> Objective subclass).
OBJECTIVES: Registry[type[Objective]] = Registry(
    "objective", error=ValueError, base=Objective, check=_check_objective,
    hint="Register one with @OBJECTIVES.register('name') on an Objective subclass.")


def as_objective(objective: str | Objective, config: TrainConfig) -> Objective:
    """The objective object for ``objective`` (a registered name or an instance)."""
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, type) and issubclass(objective, Objective):
        raise TypeError(f"objective: pass an instance ({objective.__name__}()) or a name; got "
                        "the class")
    cls = OBJECTIVES.get(objective)
    made = cls.from_config(config)
    made.name = objective if not type(made).name else type(made).name
    return made


def _as_input(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.is_floating_point() else t


@OBJECTIVES.register("npe")
class NPE(Objective):
    """Neural posterior estimation: minimise -log q(z | x) with z simulated jointly with x."""

    name = "npe"
    output = "posterior"

    def loss(self, net, q, batch, hidden):
        return -q.log_prob(_as_input(batch.z)).mean(), math.nan


@OBJECTIVES.register("kl")
class ExactKL(Objective):
    """Minimise KL(p(z | x) || q(z | x)) against the model's exact posterior.

    Analytic for a discrete latent; otherwise ``samples`` draws from p per sequence give
    the Monte Carlo estimate (its gradient is that of -E_p log q).
    """

    name = "kl"
    output = "posterior"

    def __init__(self, samples: int = 32) -> None:
        self.samples = check_int(samples, "ExactKL: samples", low=1)

    @classmethod
    def from_config(cls, config):
        return cls(samples=config.kl_samples)

    def check(self, model, config):
        if not model.has_exact_posterior:
            raise ValueError(
                f"objective 'kl' needs an exact posterior; {model.name} has none: use 'npe'.")

    def loss(self, net, q, batch, hidden):
        p = net.model.exact_posterior(batch.x, batch.mask)
        if net.model.latent_is_discrete:
            logp = p.logits.float()
            kl = (logp.exp() * (logp - q.logits)).sum(-1).mean()
            return kl, float(kl.detach())
        draws = p.sample((self.samples,))  # (S, B, *latent)
        logq = q.log_prob(draws.float())
        kl = (p.log_prob(draws).float() - logq).mean()
        return -logq.mean(), float(kl.detach())

    def settings(self):
        return {"kl_samples": self.samples}


@OBJECTIVES.register("supervised")
class Supervised(Objective):
    """Minimise -log p(y | x) with the network's target head."""

    name = "supervised"
    output = "target"

    def loss(self, net, q, batch, hidden):
        return -q.log_prob(_as_input(batch.y)).mean(), math.nan


def hide_tokens(mask: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Bool ``(B, L)``: a random ``fraction`` (at least one, never all) of the real tokens."""
    gen = torch.Generator().manual_seed(seed)
    scores = torch.rand(mask.shape, generator=gen).to(mask.device)
    scores = scores.masked_fill(~mask, 2.0)  # padding never hidden
    n = mask.sum(-1, keepdim=True)
    k = (fraction * n).round().clamp(min=1).minimum(n - 1)  # (B, 1)
    rank = scores.argsort(-1).argsort(-1)  # rank of each position among the row
    return (rank < k) & mask


@OBJECTIVES.register("mtp")
class MaskedTokens(Objective):
    """Masked-token prediction: hide ``fraction`` of each set's real tokens (at least one,
    never all) and minimise -log p(x_hidden | x_visible) with the token head.

    Args:
        fraction: Share of the real tokens hidden per sequence, in (0, 1).
        transform: Optional map from the tokens ``(B, L, *token_shape)`` to the pretext
            targets ``(B, L, ...)`` the token head predicts (e.g. a coarsened token); the
            network still sees the raw visible tokens, and the caller makes
            ``net.token_head`` match the transformed targets. Not saved in checkpoints.
    """

    name = "mtp"
    output = "token"

    def __init__(self, fraction: float = 0.25, transform: Any = None) -> None:
        if not 0.0 < float(fraction) < 1.0:
            raise ValueError(f"mask_fraction must lie in (0, 1); got {fraction!r}.")
        if transform is not None and not callable(transform):
            raise ValueError(f"token_transform must be a callable; got "
                             f"{type(transform).__name__}.")
        self.fraction, self.transform = float(fraction), transform

    @classmethod
    def from_config(cls, config):
        return cls(fraction=config.mask_fraction, transform=config.token_transform)

    def check(self, model, config):
        if config.seq_len is not None and config.length_range()[0] < 2:
            raise ValueError(
                f"objective 'mtp' hides tokens and predicts them from the rest, so every "
                f"sequence needs >= 2 tokens; got seq_len={config.seq_len!r}.")

    def hide(self, batch, seed):
        return hide_tokens(batch.mask, self.fraction, seed)

    def loss(self, net, q, batch, hidden):
        x = batch.x if self.transform is None else self.transform(batch.x)
        if tuple(x.shape[:2]) != tuple(batch.x.shape[:2]):
            raise ValueError(
                f"token_transform must keep the (B, L) leading shape "
                f"{tuple(batch.x.shape[:2])}; got {tuple(x.shape)}.")
        tokens = _as_input(x.transpose(0, 1))  # (L, B, *token_shape)
        lp = q.log_prob(tokens).transpose(0, 1)  # (B, L)
        return -(lp * hidden).sum() / hidden.sum(), math.nan

    def settings(self):
        return {"mask_fraction": self.fraction}

"""Predictive heads: a distribution over an observable (the target y, or one more token).

Used by the supervised objective (predict y from the set) and by masked-token
prediction (predict a hidden token from the visible ones). The family follows the
observable's support:

- category ids ``integer_interval(0, K - 1)`` (scalar): Categorical over K;
- ``boolean``: Bernoulli per coordinate;
- ``nonnegative_integer``: Poisson per coordinate;
- anything else: a diagonal Normal per coordinate. For the mixed (k, v) tokens of
  ``logistic-regression`` this is an approximation (v is binary); the loss still
  ranks representations, but it is not the token's true density.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import constraints

from bayesattn.models import ExchangeableModel


class PredictiveHead(nn.Module):
    """MLP from a representation ``(B, F)`` to a distribution with batch_shape ``(B,)``.

    Args:
        support: torch constraint of the observable.
        event_shape: Shape of one observable.
        in_dim: F.
        hidden: Hidden width of the MLP.
    """

    def __init__(self, support, event_shape: tuple[int, ...], in_dim: int, hidden: int = 64):
        super().__init__()
        self.event_shape = tuple(event_shape)
        size = 1
        for s in self.event_shape:
            size *= int(s)
        if isinstance(support, constraints.integer_interval) and not self.event_shape:
            self.family, out = "categorical", int(support.upper_bound) + 1
        elif support is constraints.boolean:
            self.family, out = "bernoulli", size
        elif support is constraints.nonnegative_integer:
            self.family, out = "poisson", size
        else:
            self.family, out = "normal", 2 * size
        self.size = size
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out))

    def forward(self, h: torch.Tensor) -> torch.distributions.Distribution:
        b = h.shape[0]
        out = self.net(h.float())  # (B, out)
        if self.family == "categorical":
            return torch.distributions.Categorical(logits=out)
        shape = (b, *self.event_shape)
        if self.family == "bernoulli":
            base = torch.distributions.Bernoulli(logits=out.reshape(shape))
        elif self.family == "poisson":
            rate = nn.functional.softplus(out).reshape(shape) + 1e-4
            base = torch.distributions.Poisson(rate)
        else:
            loc, raw = out[:, : self.size], out[:, self.size :]
            scale = nn.functional.softplus(raw) + 1e-3
            base = torch.distributions.Normal(loc.reshape(shape), scale.reshape(shape))
        return torch.distributions.Independent(base, len(self.event_shape))


def target_support(model: ExchangeableModel):
    """Support of the model's target y (read off its Pyro target distribution)."""
    z = model.simulate(1, 1, seed=0).z  # a valid latent; the global RNG is left alone
    return model.pyro_target(z.unsqueeze(1)).support

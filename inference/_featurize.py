"""Token features for networks: turn any model's tokens into float32 vectors.

The model's ``token_support`` decides the encoding:

- category ids (``integer_interval(0, V - 1)``): one-hot vectors of length V;
- counts (``nonnegative_integer``): ``(x, log1p(x))``, so large counts stay in range;
- everything else (real, boolean, mixed pairs): the values themselves, flattened.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import constraints

from bayesattn.models import ExchangeableModel


class TokenFeaturizer(nn.Module):
    """Map validated tokens ``(B, L, *token_shape)`` to features ``(B, L, in_dim)`` (float32).

    Args:
        model: The model whose tokens are encoded.
    """

    def __init__(self, model: ExchangeableModel) -> None:
        super().__init__()
        support = model.token_support
        event = 1
        for s in model.token_shape:
            event *= int(s)
        if isinstance(support, constraints.integer_interval):
            self.kind = "one-hot"
            self.num_categories = int(support.upper_bound) + 1
            self.in_dim = self.num_categories * event
        elif support is constraints.nonnegative_integer:
            self.kind = "count"
            self.in_dim = 2 * event
        else:
            self.kind = "value"
            self.in_dim = event

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length = x.shape[:2]
        if self.kind == "one-hot":
            feats = nn.functional.one_hot(x.long(), self.num_categories)  # (B, L, *tok, V)
        elif self.kind == "count":
            xf = x.float()
            feats = torch.stack([xf, torch.log1p(xf)], dim=-1)  # (B, L, *tok, 2)
        else:
            feats = x
        return feats.reshape(b, length, self.in_dim).float()  # (B, L, in_dim)

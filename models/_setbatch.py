"""The simulated batch that flows down the data path (docs/architecture.md#data-path)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._errors import ModelInputError


@dataclass(frozen=True)
class SetBatch:
    """A batch of exchangeable sequences drawn from a model's Pyro program.

    Attributes:
        z: Latent per sequence, shape ``(B, *latent_shape)``.
        x: Tokens, shape ``(B, L, *token_shape)``.
        y: Target per sequence, shape ``(B, *target_shape)``.
        mask: Boolean, shape ``(B, L)``; True marks a real token.
    """

    z: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        b = self.x.shape[0]
        for name in ("z", "y", "mask"):
            got = getattr(self, name).shape[0]
            if got != b:
                raise ModelInputError(
                    f"SetBatch.{name} has {got} sequences but x has {b}; "
                    "all fields need the same leading batch size."
                )
        if self.mask.dtype != torch.bool or tuple(self.mask.shape) != tuple(self.x.shape[:2]):
            raise ModelInputError(
                f"SetBatch.mask must be a bool tensor of shape {tuple(self.x.shape[:2])} "
                f"(B, L); got dtype {self.mask.dtype}, shape {tuple(self.mask.shape)}."
            )

    @property
    def num_sequences(self) -> int:
        """Number of sequences B."""
        return int(self.x.shape[0])

    @property
    def seq_len(self) -> int:
        """Padded sequence length L."""
        return int(self.x.shape[1])

    @property
    def lengths(self) -> torch.Tensor:
        """Number of real tokens per sequence, shape ``(B,)``."""
        return self.mask.sum(-1)

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: str | torch.device) -> SetBatch:
        """Return a copy with every field on ``device``."""
        return SetBatch(*(t.to(device) for t in (self.z, self.x, self.y, self.mask)))

    def __getitem__(self, index) -> SetBatch:
        """Select sequences (the batch dimension) with an int, slice or index tensor."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return SetBatch(self.z[index], self.x[index], self.y[index], self.mask[index])

    def __len__(self) -> int:
        return self.num_sequences

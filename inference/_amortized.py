"""``AmortizedPosterior``: an attention set encoder plus a posterior head, q(z | x).

    tokens x (B, L, *token_shape) --featurize--> (B, L, F) --encoder--> (B, d)
        [--concat log L--> (B, d + 1)]  = represent(x)  --head--> q(z | x), batch (B,)

Softmax attention outputs averages, so it cannot tell a set from the same set
repeated; the exact posterior sharpens with L. ``length_aware=True`` (default)
appends log L, the number of real tokens, to the pooled representation
(SCIENCE.md, P12: the length-awareness gap).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bayesattn import models as _models
from bayesattn.models import ExchangeableModel

from ._encoders import make_encoder
from ._featurize import TokenFeaturizer
from ._heads import make_head
from ._predictive import PredictiveHead, target_support

ENCODERS = ("set-transformer", "transformer", "deepsets")


class AmortizedPosterior(nn.Module):
    """Amortized posterior network q(z | x) for one model.

    Args:
        model: The model (its token types decide the featurisation, its latent the head).
        encoder: ``"set-transformer"``, ``"transformer"`` (no positional encoding, pooled)
            or ``"deepsets"`` (no attention; a baseline).
        head: Posterior head kind, or ``"auto"`` (see ``make_head``).
        length_aware: Append log L to the pooled representation.
        seed: Seed for the parameter initialisation (the global RNG is left alone).
        encoder_options: Extra keyword arguments for the encoder (e.g. ``dim``,
            ``num_heads``, ``num_blocks``, ``kernel``).
        head_options: Extra keyword arguments for the head (e.g. ``hidden``).

    Attributes:
        config: Everything needed to rebuild the network (used by :meth:`save`).
    """

    def __init__(
        self,
        model: ExchangeableModel,
        *,
        encoder: str = "set-transformer",
        head: str = "auto",
        length_aware: bool = True,
        seed: int = 0,
        encoder_options: dict[str, Any] | None = None,
        head_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, ExchangeableModel):
            raise TypeError(
                f"model must be a bayesattn.models.ExchangeableModel; got {type(model).__name__}."
            )
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}; got {encoder!r}.")
        self.model = model
        self.config = {
            "model_name": model.name,
            "model_params": dict(model.params),
            "encoder": encoder,
            "head": head,
            "length_aware": bool(length_aware),
            "seed": int(seed),
            "encoder_options": dict(encoder_options or {}),
            "head_options": dict(head_options or {}),
        }
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.featurize = TokenFeaturizer(model)
            in_dim = self.featurize.in_dim
            self.encoder = make_encoder(encoder, in_dim, **self.config["encoder_options"])
            self.rep_dim = self.encoder.out_dim + (1 if length_aware else 0)
            self.head = make_head(model, self.rep_dim, head, **self.config["head_options"])
            # Heads for the supervised and masked-token objectives (small MLPs).
            self.target_head = PredictiveHead(
                target_support(model), tuple(model.target_shape), self.rep_dim
            )
            self.token_head = PredictiveHead(
                model.token_support, tuple(model.token_shape), self.rep_dim
            )

    @property
    def length_aware(self) -> bool:
        return self.config["length_aware"]

    def _inputs(self, x: Any, mask: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, mask = self.model.validate_tokens(x, mask)
        empty = ~mask.any(-1)
        if bool(empty.any()):
            i = int(empty.nonzero()[0, 0])
            raise ValueError(
                f"sequence {i} has no real tokens (its mask is all False); an amortized "
                "posterior needs at least one token per sequence."
            )
        device = next(self.parameters()).device
        return x.to(device), mask.to(device)

    def represent(self, x: Any, mask: Any = None) -> torch.Tensor:
        """Pooled representation, shape ``(B, d)`` (``d = rep_dim``; includes log L when
        length-aware). Used by sufficiency probes.

        Args:
            x: Tokens, shape ``(B, L, *token_shape)``.
            mask: Bool ``(B, L)``, True = real token; None = all real.
        """
        x, mask = self._inputs(x, mask)
        pooled = self.encoder(self.featurize(x), mask)  # (B, d_enc)
        if self.length_aware:
            log_len = mask.sum(-1, keepdim=True).to(pooled.dtype).log()  # (B, 1)
            pooled = torch.cat([pooled, log_len], dim=-1)  # (B, d_enc + 1)
        return pooled

    def posterior(self, x: Any, mask: Any = None) -> torch.distributions.Distribution:
        """q(z | x): a Distribution with batch_shape ``(B,)`` and event_shape latent_shape.

        Args:
            x: Tokens, shape ``(B, L, *token_shape)``.
            mask: Bool ``(B, L)``, True = real token; None = all real.
        """
        rep = self.represent(x, mask)
        # The head always runs in float32, also under bf16 autocast on CUDA.
        with torch.autocast(device_type=rep.device.type, enabled=False):
            return self.head(rep.float())

    def predict_target(self, x: Any, mask: Any = None) -> torch.distributions.Distribution:
        """Predictive distribution of the target y given the set, batch_shape ``(B,)``."""
        rep = self.represent(x, mask)
        with torch.autocast(device_type=rep.device.type, enabled=False):
            return self.target_head(rep.float())

    def predict_token(self, x: Any, mask: Any = None) -> torch.distributions.Distribution:
        """Predictive distribution of one more token given the (visible) set, batch ``(B,)``."""
        rep = self.represent(x, mask)
        with torch.autocast(device_type=rep.device.type, enabled=False):
            return self.token_head(rep.float())

    def forward(self, x: Any, mask: Any = None, output: str = "posterior"):
        """``output``: "posterior" (q(z | x)), "target" (p(y | x)) or "token" (next token)."""
        if output == "posterior":
            return self.posterior(x, mask)
        if output == "target":
            return self.predict_target(x, mask)
        if output == "token":
            return self.predict_token(x, mask)
        raise ValueError(f"output must be 'posterior', 'target' or 'token'; got {output!r}.")

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike) -> Path:
        """Write the config and weights to ``path`` atomically (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"config": self.config, "state_dict": self.state_dict()}
        atomic_torch_save(payload, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu"):
        """Rebuild a network saved with :meth:`save` (``weights_only=True``: no code runs)."""
        payload = torch.load(Path(path), map_location=map_location, weights_only=True)
        cfg = payload["config"]
        model = _models.get(cfg["model_name"], **cfg["model_params"])
        net = cls(
            model, encoder=cfg["encoder"], head=cfg["head"], length_aware=cfg["length_aware"],
            seed=cfg["seed"], encoder_options=cfg["encoder_options"],
            head_options=cfg["head_options"],
        )
        net.load_state_dict(payload["state_dict"])
        return net


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temp file in the same folder, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

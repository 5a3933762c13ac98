"""``AmortizedPosterior``: an attention set encoder plus a posterior head, q(z | x).

    tokens x (B, L, *token_shape) --featurize--> (B, L, F) --encoder--> (B, d)
        [--concat log L--> (B, d + 1)]  = represent(x)  --head--> q(z | x), batch (B,)

Softmax attention outputs averages, so it cannot tell a set from the same set
repeated; the exact posterior sharpens with L. ``length_aware=True`` (default)
appends log L, the number of real tokens, to the pooled representation
(docs/claims.md#p12: the length-awareness gap).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bayesattn import models as _models
from bayesattn._files import DamagedFileError, load_torch_file, save_torch
from bayesattn._random import seeded
from bayesattn.models import ExchangeableModel

from ._encoders import ENCODERS, make_encoder
from ._featurize import TokenFeaturizer
from ._heads import make_head
from ._predictive import PredictiveHead, target_support


class AmortizedPosterior(nn.Module):
    """Amortized posterior network q(z | x) for one model.

    Args:
        model: The model (its token types decide the featurisation, its latent the head).
        encoder: A registered encoder name (``ENCODERS.names()``): ``"set-transformer"``,
            ``"transformer"`` (no positional encoding, pooled), ``"deepsets"`` (no
            attention; a baseline) or one registered with ``@ENCODERS.register``.
        head: A registered posterior head kind (``HEADS.names()``), or ``"auto"`` (see
            ``make_head``).
        length_aware: Append log L to the pooled representation.
        seed: Seed for the parameter initialisation (the global RNG is left alone).
        encoder_options: Keyword arguments for the encoder (e.g. ``dim``, ``num_heads``,
            ``num_blocks``, ``kernel``), on top of the encoder class's
            ``default_options`` (:data:`DEFAULT_ENCODER_OPTIONS`; for the attention
            encoders one block with ``ff_mult=2``: pass e.g. ``{"num_blocks": 2,
            "ff_mult": 4}`` for the classes' own constructor defaults).
        head_options: Extra keyword arguments for the head (e.g. ``hidden``).

    Attributes:
        config: Everything needed to rebuild the network (used by :meth:`save`); its
            ``encoder_options`` are the options in effect (defaults included), so a saved
            network loads with the architecture it was trained with.
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
        encoder_cls = ENCODERS.get(encoder)  # ValueError naming close matches if unknown
        self.model = model
        self.config = {
            "model_name": model.name,
            "model_params": dict(model.params),
            "encoder": encoder,
            "head": head,
            "length_aware": bool(length_aware),
            "seed": int(seed),
            "encoder_options": {**encoder_cls.default_options, **(encoder_options or {})},
            "head_options": dict(head_options or {}),
            "config_version": 2,
        }
        with seeded(seed):
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

    def represent(self, x: Any, mask: Any = None, *, chunk_size: int | None = 1024
                  ) -> torch.Tensor:
        """Pooled representation, shape ``(B, d)`` (``d = rep_dim``; includes log L when
        length-aware). Used by sufficiency probes.

        Args:
            x: Tokens, shape ``(B, L, *token_shape)``.
            mask: Bool ``(B, L)``, True = real token; None = all real.
            chunk_size: Encode at most this many sequences at a time (None: all at once).
                The result is the same; large batches run faster in chunks and need less
                memory (``benchmarks/throughput.py``, one thread, 10,000 sets of L = 128:
                a Set Transformer managed 2,077 sets/s in one batch and 3,890 in chunks
                of 1,024).
        """
        x, mask = self._inputs(x, mask)
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(
                chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}.")
        n = x.shape[0]
        step = n if chunk_size is None else chunk_size
        feats = self.featurize(x)  # (B, L, F)
        pooled = torch.cat([self.encoder(feats[i:i + step], mask[i:i + step])
                            for i in range(0, n, step)])  # (B, d_enc)
        if self.length_aware:
            log_len = mask.sum(-1, keepdim=True).to(pooled.dtype).log()  # (B, 1)
            pooled = torch.cat([pooled, log_len], dim=-1)  # (B, d_enc + 1)
        return pooled

    def posterior(self, x: Any, mask: Any = None, *, chunk_size: int | None = 1024
                  ) -> torch.distributions.Distribution:
        """q(z | x): a Distribution with batch_shape ``(B,)`` and event_shape latent_shape.

        Args:
            x: Tokens, shape ``(B, L, *token_shape)``.
            mask: Bool ``(B, L)``, True = real token; None = all real.
            chunk_size: Sequences encoded at a time (see :meth:`represent`).
        """
        rep = self.represent(x, mask, chunk_size=chunk_size)
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
        save_torch(payload, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu"):
        """Rebuild a network saved with :meth:`save` (``weights_only=True``: no code runs).

        Raises:
            FileNotFoundError: ``path`` does not exist.
            DamagedFileError: ``path`` is empty, truncated or not a saved network.
        """
        payload = load_torch_file(path, map_location=map_location, what="network file")
        if not (isinstance(payload, dict) and {"config", "state_dict"} <= set(payload)):
            raise DamagedFileError(f"network file {path} holds no saved AmortizedPosterior "
                                   "(no config and state_dict); save it with net.save(path)")
        cfg = payload["config"]
        options = cfg["encoder_options"]
        if "config_version" not in cfg:  # saved before the defaults were recorded
            options = {**ENCODERS.get(cfg["encoder"]).legacy_options, **options}
        model = _models.get(cfg["model_name"], **cfg["model_params"])
        net = cls(
            model, encoder=cfg["encoder"], head=cfg["head"], length_aware=cfg["length_aware"],
            seed=cfg["seed"], encoder_options=options,
            head_options=cfg["head_options"],
        )
        net.load_state_dict(payload["state_dict"])
        return net

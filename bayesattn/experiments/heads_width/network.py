"""The heads-width network: a per-token MLP and ONE multi-head attention pooling layer
whose H * d_v pooled numbers are the bottleneck (torch imported on first use)."""

from __future__ import annotations

import functools
import math

from bayesattn._random import seeded

from .presets import model_spec


@functools.lru_cache(maxsize=1)
def net_classes():
    """``(AttentionPool, HeadsWidthPosterior)``, built on first use (torch stays lazy)."""
    import torch
    from torch import nn

    from bayesattn.inference import AmortizedPosterior, SetEncoder, make_kernel

    class AttentionPool(SetEncoder):
        """Per-token MLP, then one multi-head attention pooling with H * d_v outputs.

        x ``(B, L, in_dim)``, mask ``(B, L)`` -> ``(B, heads * value_width)``: head h
        returns ``sum_i softmax_i(q_h . k_h(x_i) / sqrt(key_width)) v_h(x_i)``.
        """

        def __init__(self, in_dim: int, heads: int, value_width: int, hidden: int = 32,
                     key_width: int = 8) -> None:
            super().__init__()
            self.in_dim, self.heads, self.value_width = int(in_dim), int(heads), int(value_width)
            self.key_width = int(key_width)
            self.phi = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(),
                                     nn.Linear(hidden, hidden), nn.GELU())
            self.query = nn.Parameter(torch.randn(heads, key_width) / math.sqrt(key_width))
            self.k_proj = nn.Linear(hidden, heads * key_width)
            self.v_proj = nn.Linear(hidden, heads * value_width)
            self.kernel = make_kernel("softmax")
            self.out_dim = self.heads * self.value_width

        def encode(self, x, mask):
            B, L, _ = x.shape
            h = self.phi(x)  # (B, L, hidden)
            H, dk, dv = self.heads, self.key_width, self.value_width
            k = self.k_proj(h).view(B, L, H, dk).transpose(1, 2)  # (B, L, H*dk) -> (B, H, L, dk)
            v = self.v_proj(h).view(B, L, H, dv).transpose(1, 2)  # (B, L, H*dv) -> (B, H, L, dv)
            q = self.query[None, :, None, :].expand(B, H, 1, dk)  # (H, dk) -> (B, H, 1, dk)
            out = self.kernel.attend(q.to(k.dtype), k, v, mask)  # (B, H, 1, dv)
            return out.reshape(B, H * dv)  # (B, H, 1, dv) -> (B, H * dv)

    class HeadsWidthPosterior(AmortizedPosterior):
        """An :class:`AmortizedPosterior` whose encoder is :class:`AttentionPool`.

        Built as a length-aware AmortizedPosterior (so ``train`` and every gap function
        accept it) whose placeholder encoder is then replaced; ``save``/``load`` of the
        library do not rebuild it (rebuild with the same arguments and load the state
        dict).
        """

        def __init__(self, model, heads: int, value_width: int, *, hidden: int = 32,
                     key_width: int = 8, head: str = "auto", seed: int = 0) -> None:
            width = int(heads) * int(value_width)
            super().__init__(model, encoder="deepsets", head=head, length_aware=True,
                             seed=seed, encoder_options={"dim": width, "num_layers": 1})
            with seeded(int(seed) + 1):
                self.encoder = AttentionPool(self.featurize.in_dim, heads, value_width,
                                             hidden, key_width)
            self.config["encoder"] = "attention-pool"
            self.config["encoder_options"] = {"heads": int(heads),
                                              "value_width": int(value_width),
                                              "hidden": int(hidden), "key_width": int(key_width)}

    return AttentionPool, HeadsWidthPosterior


def build_net(model, cfg: dict, params: dict, seed: int):
    """The network of one grid configuration (``cfg`` a row of :func:`configs`)."""
    _, cls = net_classes()
    return cls(model, cfg["heads"], cfg["value_width"], hidden=params["hidden"],
               key_width=params["key_width"],
               head=model_spec(cfg["model"], params["radius"])["head"], seed=seed)

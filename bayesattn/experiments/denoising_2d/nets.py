"""The per-pixel denoisers of denoising-2d: build a net for an attention variant, run it,
train it on the MSE to the clean image, predict, and read its learned bandwidths."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bayesattn._random import seeded
from bayesattn.runner import derive_seed

from .presets import VARIANT_CONFIG, VARIANTS


def grid_positions(model, batch: int, device=None):
    """Pixel positions ``(row, col)`` of the model's grid, float32 ``(batch, L, 2)``."""
    import torch

    w = int(model.params["grid_width"])
    pos = torch.as_tensor(model.positions(w * w), dtype=torch.float32, device=device)
    return pos.expand(batch, w * w, 2)  # (L, 2) -> (B, L, 2)


def build_net(variant: str, p: dict, seed: int):
    """A per-pixel denoiser: ``ModuleDict(encoder=TransformerEncoder, readout=LN + Linear)``.

    Args:
        variant: One of :data:`VARIANTS`.
        p: Preset parameters (``dim``, ``num_heads``, ``num_layers``, ``bandwidth``).
        seed: Seed of the initial weights (the global RNG is left alone).
    """
    from torch import nn

    from bayesattn.inference import TransformerEncoder

    if variant not in VARIANT_CONFIG:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}.")
    cfg = VARIANT_CONFIG[variant]
    kw = dict(cfg.get("kernel_kwargs", {}))
    if cfg["positional"] == "relative" and p.get("bandwidth") is not None:
        kw["bandwidth"] = p["bandwidth"]
    dim = int(p["dim"])
    with seeded(seed):
        encoder = TransformerEncoder(1, dim=dim, num_heads=int(p["num_heads"]),
                                     num_layers=int(p["num_layers"]), kernel=cfg["kernel"],
                                     positional=cfg["positional"], kernel_kwargs=kw)
        readout = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 1))
    return nn.ModuleDict({"encoder": encoder, "readout": readout})


def denoise(net, x, positions, *, return_weights: bool = False):
    """Per-pixel estimates ``(B, L)`` of u from noisy pixels ``x (B, L)``.

    ``positions (B, L, 2)`` are used by the positional variants and ignored by ``sa``.
    With ``return_weights`` also every layer's attention weights ``(B, H, L, L)``.
    """
    enc = net["encoder"]
    pos = positions if enc.accepts_positions else None
    out = enc.tokens(x[..., None], positions=pos, return_weights=return_weights)
    h, w = out if return_weights else (out, None)  # (B, L, dim)
    uh = net["readout"](h)[..., 0]  # (B, L, 1) -> (B, L)
    return (uh, w) if return_weights else uh


def train_denoiser(net, model, *, steps: int, batch_size: int, lr: float, weight_decay: float,
                   clip: float, data_seed: int, chunk_steps: int, device: str = "cpu",
                   progress=None, checkpoint_dir=None,
                   checkpoint_every: int = 100) -> pd.DataFrame:
    """AdamW on the MSE to the clean image, cosine decay to lr / 10; fixed, seeded data.

    Training images are simulated in chunks of ``chunk_steps * batch_size`` with seeds
    ``derive_seed(data_seed, chunk)``, so every variant sees the same images in the same
    order. With ``checkpoint_dir`` the loop saves its state every ``checkpoint_every``
    steps and, when a checkpoint is there, continues from it (the same numbers as an
    uninterrupted run on a CPU). Returns the per-step history (``step``, ``loss``).
    """
    from pathlib import Path

    import torch

    from bayesattn.runner import LoopCheckpoint

    if steps < 1 or batch_size < 1 or chunk_steps < 1:
        raise ValueError(f"steps, batch_size and chunk_steps must be >= 1; got {steps}, "
                         f"{batch_size}, {chunk_steps}.")
    w = int(model.params["grid_width"])
    L = w * w
    net = net.to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    pos = grid_positions(model, batch_size, device)
    ckpt = (LoopCheckpoint(Path(checkpoint_dir), {"net": net, "opt": opt, "sched": sched})
            if checkpoint_dir is not None else None)
    start = ckpt.start if ckpt is not None else 0
    losses = list(ckpt.extra.get("losses", [])) if ckpt is not None else []
    step_iter = range(start, steps) if progress is None else progress(range(start, steps))
    x = y = None
    for step in step_iter:
        k = step % chunk_steps
        if k == 0 or x is None:  # a new chunk, or resuming inside one
            first = step - k
            n = min(chunk_steps, steps - first) * batch_size
            b = model.simulate(n, L, seed=derive_seed(data_seed, step // chunk_steps))
            x, y = b.x.float().to(device), b.y.float().to(device)
        sl = slice(k * batch_size, (k + 1) * batch_size)
        loss = ((denoise(net, x[sl], pos) - y[sl]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if ckpt is not None and (step + 1) % checkpoint_every == 0:
            ckpt.save(step + 1, losses=losses)
    return pd.DataFrame({"step": np.arange(1, steps + 1), "loss": losses})


def predict(net, model, x, device: str = "cpu", chunk: int = 256) -> np.ndarray:
    """Denoised images ``(B, L)`` float64 NumPy for noisy images ``x (B, L)``."""
    import torch

    net = net.to(device).eval()
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], chunk):
            xb = x[i:i + chunk].float().to(device)
            out.append(denoise(net, xb, grid_positions(model, xb.shape[0], device)).cpu())
    return torch.cat(out).double().numpy()


def bandwidths(net) -> list[tuple[int, int, float]]:
    """Learned spatial bandwidths ``(layer, head, sigma_h)`` of a bilateral-type net."""
    return [(li, h, float(s)) for li, bws in enumerate(net["encoder"].spatial_bandwidths())
            for h, s in enumerate(bws)]

"""Pyro NUTS on the Pyro twin: the cross-check backend (slow, one chain at a time).

Chains run one after the other in this process (no multiprocessing), each with
its own seed, inside a forked torch RNG so the caller's global state is untouched.
Pyro NUTS evaluates tiny tensors, so on a CPU it often runs several times faster
with ``torch.set_num_threads(1)``; the library leaves that choice to the caller.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from bayesattn._random import seeded
from bayesattn.models import ExchangeableModel

from ._numpyro_nuts import MCMCDraws


def run_pyro_nuts(
    model: ExchangeableModel,
    x: torch.Tensor,
    mask: torch.Tensor,
    *,
    num_samples: int,
    num_warmup: int,
    num_chains: int,
    seed: int,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    progress: bool = False,
) -> MCMCDraws:
    """Sample p(z | x_b) for each dataset b with ``pyro.infer.NUTS`` (float64).

    Args:
        model: The model; its Pyro program (without the y site) is the target.
        x: Validated tokens, shape ``(B, L, *token_shape)``.
        mask: Bool, shape ``(B, L)``.
        num_samples: Post-warm-up draws per chain.
        num_warmup: Warm-up iterations per chain.
        num_chains: Chains per dataset (run sequentially).
        seed: Integer seed.
        progress: Show Pyro's progress bar.

    Returns:
        :class:`MCMCDraws` with ``z`` of shape ``(C, S, B, *latent_shape)``.
    """
    from pyro.infer import MCMC, NUTS

    b, seq_len = int(x.shape[0]), int(x.shape[1])
    x = x.detach().cpu()
    mask = mask.detach().cpu()

    def program(xb, mb):
        return model.pyro_model(
            xb, None, num_sequences=1, seq_len=seq_len, mask=mb, sample_target=False
        )

    start = time.perf_counter()
    z = np.empty((num_chains, num_samples, b) + tuple(model.latent_shape))
    diverging = np.zeros((num_chains, num_samples, b), dtype=bool)
    for i in range(b):
        for c in range(num_chains):
            with seeded(int(seed) * 100_003 + i * 1009 + c):
                kernel = NUTS(
                    program,
                    target_accept_prob=target_accept_prob,
                    max_tree_depth=max_tree_depth,
                )
                mcmc = MCMC(
                    kernel, num_samples=num_samples, warmup_steps=num_warmup,
                    num_chains=1, disable_progbar=not progress,
                )
                mcmc.run(x[i : i + 1], mask[i : i + 1])
            draws = mcmc.get_samples()["z"].reshape((num_samples,) + tuple(model.latent_shape))
            z[c, :, i] = draws.double().numpy()
            div_idx = mcmc.diagnostics()["divergences"]["chain 0"]
            diverging[c, np.asarray(div_idx, dtype=np.int64), i] = True
    return MCMCDraws(
        z=z, sample_stats={"diverging": diverging}, wall_time_s=time.perf_counter() - start
    )

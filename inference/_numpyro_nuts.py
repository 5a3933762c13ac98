"""NumPyro NUTS vectorised over datasets and chains: one compiled program per batch.

Each (dataset, chain) pair is an independent NUTS chain with its own step-size
and diagonal mass-matrix adaptation; ``jax.vmap`` runs all ``B * C`` of them in
lock-step inside one ``jax.jit``-compiled ``lax.scan``, so there is no Python
loop over datasets. Everything runs in float64 (``jax.enable_x64``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from bayesattn.models import ExchangeableModel


@dataclass
class MCMCDraws:
    """Raw output of a sampler.

    Attributes:
        z: Constrained draws, float64 array ``(chains, draws, B, *latent_shape)``.
        sample_stats: Arrays of shape ``(chains, draws, B)`` (``diverging``, ...).
        wall_time_s: Seconds spent sampling (including compilation).
    """

    z: np.ndarray
    sample_stats: dict[str, np.ndarray]
    wall_time_s: float


def _program(model: ExchangeableModel, seq_len: int):
    def program(x, mask):
        # One dataset: x (1, L, *token_shape), mask (1, L); no y site.
        return model.numpyro_model(
            x, None, num_sequences=1, seq_len=seq_len, mask=mask, sample_target=False
        )

    return program


_CACHE: dict[tuple, tuple] = {}
_CACHE_SIZE = 16


def _compiled_sampler(model: ExchangeableModel, x0, m0, init_keys, config: tuple):
    """Initial points, and the jitted sampler for one model/shape/config (cached).

    Compilation takes seconds, so the jitted program is cached per
    ``(model, L, config)``; the potential does not depend on the data it was built
    with (``dynamic_args=True``): the data are arguments of the compiled function.
    """
    import jax
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import initialize_model

    seq_len = int(x0.shape[1])
    num_warmup, num_samples, target_accept_prob, max_tree_depth, dense_mass = config
    program = _program(model, seq_len)
    info, potential_gen, postprocess_gen, _ = initialize_model(
        init_keys, program, model_args=(x0, m0), dynamic_args=True
    )
    key = (id(model), seq_len, config)
    cached = _CACHE.get(key)
    if cached is not None and cached[0] is model:
        return info, cached[1], cached[2]

    def run(key, z0, x, m):
        init_kernel, sample_kernel = hmc(potential_fn_gen=potential_gen, algo="NUTS")
        state = init_kernel(
            z0,
            num_warmup,
            target_accept_prob=target_accept_prob,
            max_tree_depth=max_tree_depth,
            dense_mass=dense_mass,
            model_args=(x, m),
            rng_key=key,
        )

        def warm(s, _):
            return sample_kernel(s, model_args=(x, m)), None

        state, _ = jax.lax.scan(warm, state, None, length=num_warmup)

        def draw(s, _):
            s = sample_kernel(s, model_args=(x, m))
            stats = {
                "diverging": s.diverging,
                "n_steps": s.num_steps,
                "acceptance_rate": s.accept_prob,
                "energy": s.energy,
                "lp": -s.potential_energy,
                "step_size": s.adapt_state.step_size,
            }
            return s, (s.z, stats)

        _, out = jax.lax.scan(draw, state, None, length=num_samples)
        return out

    chains = jax.vmap(run, in_axes=(0, 0, None, None))  # C chains, one dataset
    sampler = jax.jit(jax.vmap(chains, in_axes=(0, 0, 0, 0)))  # B datasets
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (model, sampler, postprocess_gen)
    return info, sampler, postprocess_gen


def run_numpyro_nuts(
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
    dense_mass: bool = False,
) -> MCMCDraws:
    """Sample p(z | x_b) for every dataset b with NumPyro NUTS, vectorised.

    Args:
        model: The model; its NumPyro program (without the y site) is the target.
        x: Validated tokens, shape ``(B, L, *token_shape)``.
        mask: Bool, shape ``(B, L)``.
        num_samples: Post-warm-up draws per chain.
        num_warmup: Warm-up (adaptation) iterations per chain.
        num_chains: Independent chains per dataset.
        seed: Integer seed for the JAX PRNG.

    Returns:
        :class:`MCMCDraws` with ``z`` of shape ``(C, S, B, *latent_shape)``.
    """
    import jax
    import jax.numpy as jnp

    b = int(x.shape[0])
    start = time.perf_counter()
    with jax.enable_x64(True):
        xj = jnp.asarray(x.detach().cpu().numpy())[:, None]  # (B, 1, L, *token_shape)
        mj = jnp.asarray(mask.detach().cpu().numpy())[:, None]  # (B, 1, L)
        key_init, key_run = jax.random.split(jax.random.PRNGKey(int(seed)))
        init_keys = jax.random.split(key_init, b * num_chains)
        config = (
            int(num_warmup), int(num_samples), float(target_accept_prob),
            int(max_tree_depth), bool(dense_mass),
        )
        info, sampler, postprocess_gen = _compiled_sampler(model, xj[0], mj[0], init_keys, config)
        # Initial points drawn uniformly in (-2, 2) on the unconstrained scale.
        z0 = jax.tree_util.tree_map(
            lambda a: a.reshape((b, num_chains) + a.shape[1:]), info.z
        )
        run_keys = jax.random.split(key_run, b * num_chains).reshape(b, num_chains, -1)
        z_unc, stats = sampler(run_keys, z0, xj, mj)
        # Map unconstrained draws to the support (does not depend on the data).
        postprocess = postprocess_gen(xj[0], mj[0])
        flat = jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[3:]), z_unc)
        z = jax.vmap(postprocess)(flat)["z"]
        z = np.asarray(z).reshape((b, num_chains, num_samples) + tuple(model.latent_shape))
        stats = {k: np.asarray(v) for k, v in stats.items()}
    # (B, C, S, ...) -> (C, S, B, ...)
    z = np.moveaxis(z, 0, 2)
    stats = {k: np.moveaxis(v, 0, 2) for k, v in stats.items()}
    return MCMCDraws(z=z, sample_stats=stats, wall_time_s=time.perf_counter() - start)

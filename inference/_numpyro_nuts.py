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
        missed_modes: Per dataset, how many local modes of the posterior that the mode
            search found (within :data:`MODE_LOG_DENSITY_GAP` nats of the highest) no
            chain visited; None when no search ran.
    """

    z: np.ndarray
    sample_stats: dict[str, np.ndarray]
    wall_time_s: float
    missed_modes: np.ndarray | None = None


#: Mode search: starting points per dataset, and their range on the unconstrained scale.
MODE_SEARCH_STARTS = 16
INIT_RADIUS = 2.0
#: A local mode counts when its log density is within this many nats of the highest.
MODE_LOG_DENSITY_GAP = 10.0
#: Two optimiser end points are one mode when they lie within this many posterior sds
#: (pooled over the chains, per unconstrained coordinate) of each other; a mode is
#: visited when some draw lies within VISIT_SDS sds of it.
SAME_MODE_SDS = 6.0
VISIT_SDS = 4.0


def _program(model: ExchangeableModel, seq_len: int):
    def program(x, mask):
        # One dataset: x (1, L, *token_shape), mask (1, L); no y site.
        return model.numpyro_model(
            x, None, num_sequences=1, seq_len=seq_len, mask=mask, sample_target=False
        )

    return program


#: Compiled programs, keyed by the model's ``cache_key()``, the length and the config:
#: a model rebuilt with the same class and parameters reuses them. An entry holds the
#: model it was built from, so that a key made from ``id(model)`` (parameters JSON cannot
#: hold) is never reused by another object at the same address.
_CACHE: dict[tuple, tuple] = {}
_CACHE_SIZE = 32


def _cached(key: tuple, model: ExchangeableModel, build):
    """The cached value for ``key`` (built with ``build()`` on a miss); least recently
    used entries go first once the cache holds :data:`_CACHE_SIZE`."""
    hit = _CACHE.pop(key, None)
    if hit is not None and (key[0][0] != "instance" or hit[0] is model):
        _CACHE[key] = hit  # most recently used last
        return hit[1]
    value = build()
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (model, value)
    return value


def _compiled_sampler(model: ExchangeableModel, x0, m0, init_keys, config: tuple):
    """Initial points, and the jitted sampler for one model/shape/config (cached).

    Compilation takes seconds, so the jitted program is cached per
    ``(model, L, config)``; the potential does not depend on the data it was built
    with (``dynamic_args=True``): the data are arguments of the compiled function.
    """
    from numpyro.infer.util import initialize_model

    seq_len = int(x0.shape[1])
    program = _program(model, seq_len)
    info, potential_gen, postprocess_gen, _ = initialize_model(
        init_keys, program, model_args=(x0, m0), dynamic_args=True
    )

    def build():
        return _build_sampler(potential_gen, config), postprocess_gen

    sampler, postprocess = _cached((model.cache_key(), "nuts", seq_len, config), model, build)
    return info, sampler, postprocess


def _build_sampler(potential_gen, config: tuple):
    """``jit(sampler)(keys, z0, x, m)``: every (dataset, chain) pair runs one scan over
    warm-up and sampling, vectorised with one ``vmap`` over the B*C pairs; returns the
    post-warm-up draws and stats shaped ``(B, C, S, ...)``.

    Tracing, not XLA, is most of a first call's cost: the NUTS step is traced once (not
    once for warm-up and once for sampling) and batched once (not per datasets and again
    per chains). The draws are bit for bit those of the two-scan, two-vmap program.
    """
    import jax
    import jax.numpy as jnp
    from numpyro.infer.hmc import hmc

    num_warmup, num_samples, target_accept_prob, max_tree_depth, dense_mass = config

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

        def record(s):
            stats = {
                "diverging": s.diverging,
                "n_steps": s.num_steps,
                "acceptance_rate": s.accept_prob,
                "energy": s.energy,
                "lp": -s.potential_energy,
                "step_size": s.adapt_state.step_size,
            }
            return s.z, stats

        def step(carry, i):
            s, kept = carry
            s = sample_kernel(s, model_args=(x, m))
            # warm-up iterations write slot 0, which the first kept draw overwrites
            j = jnp.maximum(i - num_warmup, 0)
            kept = jax.tree_util.tree_map(
                lambda buf, v: jax.lax.dynamic_update_index_in_dim(buf, v, j, 0),
                kept, record(s))
            return (s, kept), None

        # One scan over warm-up and sampling (the kernel adapts while its iteration
        # count is below num_warmup), so the NUTS step is traced once, not twice; only
        # the num_samples kept draws are stored.
        kept = jax.tree_util.tree_map(
            lambda a: jnp.zeros((num_samples,) + jnp.shape(a), jnp.result_type(a)),
            record(state))
        (_, kept), _ = jax.lax.scan(step, (state, kept), jnp.arange(num_warmup + num_samples))
        return kept

    flat = jax.vmap(run)  # one batch axis over every (dataset, chain) pair

    def sampler(keys, z0, x, m):
        # keys, z0: (B, C, ...); x, m: (B, ...). One vmap over B*C rows is traced once,
        # where vmap(datasets, vmap(chains)) would batch the NUTS program twice.
        b, c = keys.shape[:2]
        fold = lambda a: a.reshape((b * c,) + a.shape[2:])  # noqa: E731
        rep = lambda a: jnp.repeat(a, c, axis=0)  # noqa: E731
        out = flat(fold(keys), jax.tree_util.tree_map(fold, z0), rep(x), rep(m))
        return jax.tree_util.tree_map(lambda a: a.reshape((b, c) + a.shape[1:]), out)

    return jax.jit(sampler)


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
    mode_search: bool = True,
) -> MCMCDraws:
    """Sample p(z | x_b) for every dataset b with NumPyro NUTS, vectorised.

    Chains start in antithetic pairs, and (``mode_search=True``) a multi-start
    optimiser looks for local modes the chains did not visit (see :func:`_missed_modes`).

    Args:
        model: The model; its NumPyro program (without the y site) is the target.
        x: Validated tokens, shape ``(B, L, *token_shape)``.
        mask: Bool, shape ``(B, L)``.
        num_samples: Post-warm-up draws per chain.
        num_warmup: Warm-up (adaptation) iterations per chain.
        num_chains: Independent chains per dataset.
        seed: Integer seed for the JAX PRNG.
        mode_search: Run the mode search and fill ``missed_modes``.

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
        # Initial points drawn uniformly in (-2, 2) on the unconstrained scale, in
        # antithetic pairs: chain 2k+1 starts at minus chain 2k's point, so that the
        # chains of a posterior with mirror-image modes start on both sides.
        z0 = jax.tree_util.tree_map(
            lambda a: a.reshape((b, num_chains) + a.shape[1:]), info.z
        )
        potential_gen = _cached((model.cache_key(), "potential", int(x.shape[1])), model,
                                lambda: _potential_gen(model, xj[0], mj[0]))
        z0 = _antithetic(z0, num_chains, energies=_cached(
            (model.cache_key(), "energies", int(x.shape[1])), model,
            lambda: _energies(potential_gen)), x=xj, m=mj)
        run_keys = jax.random.split(key_run, b * num_chains).reshape(b, num_chains, -1)
        z_unc, stats = sampler(run_keys, z0, xj, mj)
        missed = None
        if mode_search:
            missed = _missed_modes(model, xj, mj, z_unc, jax.random.fold_in(key_init, 1),
                                   potential_gen)
        # Map unconstrained draws to the support (does not depend on the data).
        postprocess = postprocess_gen(xj[0], mj[0])
        flat = jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[3:]), z_unc)
        z = jax.vmap(postprocess)(flat)["z"]
        z = np.asarray(z).reshape((b, num_chains, num_samples) + tuple(model.latent_shape))
        stats = {k: np.asarray(v) for k, v in stats.items()}
    # (B, C, S, ...) -> (C, S, B, ...)
    z = np.moveaxis(z, 0, 2)
    stats = {k: np.moveaxis(v, 0, 2) for k, v in stats.items()}
    return MCMCDraws(z=z, sample_stats=stats, wall_time_s=time.perf_counter() - start,
                     missed_modes=missed)


def _potential_gen(model: ExchangeableModel, x0, m0):
    """``potential_gen(x, m) -> potential_fn(z_dict)`` of the model's NumPyro program."""
    import jax
    from numpyro.infer.util import initialize_model

    info, potential_gen, _, _ = initialize_model(
        jax.random.PRNGKey(0), _program(model, int(x0.shape[1])), model_args=(x0, m0),
        dynamic_args=True)
    return potential_gen


def _energies(potential_gen):
    """``jit(energies)(x, m, z) -> (B, C)``: the potential of each chain's point."""
    import jax

    def energy(xb, mb, zb):
        return jax.vmap(lambda zc: potential_gen(xb, mb)(zc))(zb)

    return jax.jit(jax.vmap(energy))


def _antithetic(z0, num_chains: int, *, energies, x, m):
    """Replace chain 2k+1's start by minus chain 2k's where the potential there is finite."""
    import jax
    import jax.numpy as jnp

    if num_chains < 2:
        return z0
    pairs = num_chains // 2

    def mirrored(a):
        return a.at[:, 1:2 * pairs:2].set(-a[:, 0:2 * pairs:2])

    z1 = jax.tree_util.tree_map(mirrored, z0)
    pe = energies(x, m, z1)  # (B, C)
    ok = jnp.isfinite(pe)

    def pick(new, old):
        shape = ok.shape + (1,) * (new.ndim - ok.ndim)
        return jnp.where(ok.reshape(shape), new, old)

    return jax.tree_util.tree_map(pick, z1, z0)


def _missed_modes(model: ExchangeableModel, x, m, z_unc, key, potential_gen) -> np.ndarray:
    """How many local modes of each dataset's posterior no chain visited.

    From :data:`MODE_SEARCH_STARTS` points, half drawn uniformly in ``(-INIT_RADIUS,
    INIT_RADIUS)`` on the unconstrained scale (where the chains start) and half from the
    prior, BFGS minimises the potential (minus the
    log posterior density). End points where BFGS converged, with a log density within
    :data:`MODE_LOG_DENSITY_GAP` nats of the highest, are grouped into modes
    (:data:`SAME_MODE_SDS` apart, in units of the chains' pooled sd per coordinate); a
    mode no draw comes within :data:`VISIT_SDS` sds of was missed by every chain.

    The limit: a mode that no start's basin reaches, or one so narrow or low that BFGS
    does not settle on it, is not found; the search certifies the chains against the
    modes it finds, not against every mode.
    """
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree
    from jax.scipy.optimize import minimize
    from numpyro.infer import init_to_sample
    from numpyro.infer.util import initialize_model

    one = jax.tree_util.tree_map(lambda a: a[0, 0, 0], z_unc)
    _, unravel = ravel_pytree(one)
    flat = jax.vmap(jax.vmap(jax.vmap(lambda t: ravel_pytree(t)[0])))(z_unc)  # (B, C, S, d)
    b, d = int(flat.shape[0]), int(flat.shape[-1])
    half = MODE_SEARCH_STARTS // 2
    key_u, key_p = jax.random.split(key)
    uniform = jax.random.uniform(key_u, (b, half, d), minval=-INIT_RADIUS,
                                 maxval=INIT_RADIUS, dtype=flat.dtype)
    # the other half drawn from the prior: they reach modes far outside (-2, 2)
    info, _, _, _ = initialize_model(
        jax.random.split(key_p, b * (MODE_SEARCH_STARTS - half)),
        _program(model, int(x.shape[2])), model_args=(x[0], m[0]), dynamic_args=True,
        init_strategy=init_to_sample)
    prior = jax.vmap(lambda t: ravel_pytree(t)[0])(info.z).reshape(b, -1, d)
    starts = jnp.concatenate([uniform, prior.astype(flat.dtype)], axis=1)

    def solve(xb, mb, v0):
        fn = potential_gen(xb, mb)
        res = minimize(lambda v: fn(unravel(v)), v0, method="BFGS",
                       options={"maxiter": 200})
        return res.x, res.fun, res.success

    search = _cached((model.cache_key(), "modes", int(x.shape[2])), model,
                     lambda: jax.jit(jax.vmap(jax.vmap(solve, in_axes=(None, None, 0)))))
    ends, fun, success = search(x, m, starts)
    ends, fun, success = np.asarray(ends), np.asarray(fun), np.asarray(success)
    flat = np.asarray(flat)
    missed = np.zeros(b, dtype=np.int64)
    for i in range(b):
        draws = flat[i].reshape(-1, d)
        scale = draws.std(axis=0) + 1e-12
        good = success[i] & np.isfinite(fun[i])
        if not good.any():
            continue
        best = fun[i][good].min()
        keep = ends[i][good & (fun[i] <= best + MODE_LOG_DENSITY_GAP)]
        modes: list[np.ndarray] = []
        for point in keep:
            if all(np.max(np.abs(point - q) / scale) > SAME_MODE_SDS for q in modes):
                modes.append(point)
        for mode in modes:
            near = np.max(np.abs(draws - mode) / scale, axis=1) <= VISIT_SDS
            missed[i] += int(not near.any())
    return missed

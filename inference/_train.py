"""``train``: fit an amortized posterior on simulations from the model's Pyro program.

Every step simulates a fresh batch (or draws from a fixed training set of N
sequences, for generalisation studies) on the network's device, with sequence
lengths drawn per sequence from ``seq_len = (low, high)`` and masks for the
padding. AdamW with linear warm-up and cosine decay, gradient clipping, atomic
checkpoints (weights, optimizer, scheduler, RNG state, history) and exact resume
on CPU. Data parallel under ``torchrun``: each rank simulates its own shard of the
step's batch, DistributedDataParallel averages the gradients.

Objectives are objects (``bayesattn.inference.Objective``; see ``_objectives``); the
registered names ``"npe"``, ``"kl"``, ``"supervised"`` and ``"mtp"`` keep working. Every
setting is a field of :class:`~bayesattn.inference.TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from bayesattn._checks import check_choice, check_int, length_range
from bayesattn._device import resolve_device
from bayesattn._files import DamagedFileError, load_torch_file, save_torch
from bayesattn._random import seeded
from bayesattn._text import short_path
from bayesattn._threads import torch_threads
from bayesattn.models import ExchangeableModel, SetBatch

from ._amortized import AmortizedPosterior
from ._config import LENGTH_DISTRIBUTIONS, TrainConfig
from ._objectives import Objective, as_objective

CHECKPOINT = "checkpoint.pt"
#: The checkpoint before the last one, kept so that a damaged last checkpoint costs at
#: most ``checkpoint_every`` steps.
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
_CHECKPOINT_KEYS = {"step", "net", "optimizer", "scheduler", "rng", "history", "run_config"}


def _read_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    state = load_torch_file(path, map_location=device, what="checkpoint")
    if not (isinstance(state, dict) and _CHECKPOINT_KEYS <= set(state)):
        raise DamagedFileError(f"checkpoint {path} is a torch file but not a training "
                               f"checkpoint (it lacks {sorted(_CHECKPOINT_KEYS - set(state))})"
                               if isinstance(state, dict) else
                               f"checkpoint {path} is a torch file but not a training checkpoint")
    return state


def load_checkpoint(checkpoint_dir: str | Path, device: str | torch.device = "cpu"
                    ) -> dict[str, Any] | None:
    """The newest intact checkpoint in ``checkpoint_dir`` (None when there is none).

    :func:`train` keeps the last two checkpoints (``checkpoint.pt`` and
    ``checkpoint.prev.pt``). A damaged newest one (empty, truncated, not a checkpoint)
    is skipped with a warning naming it, and the one before is used.

    Raises:
        DamagedFileError: checkpoints exist but none of them can be read.
    """
    folder = Path(checkpoint_dir)
    problems = []
    for name in (CHECKPOINT, PREVIOUS_CHECKPOINT):
        path = folder / name
        if not path.exists():
            continue
        try:
            state = _read_checkpoint(path, torch.device(device))
        except DamagedFileError as err:
            problems.append(str(err))
            continue
        if problems:
            warnings.warn(f"{problems[0]}; resuming from the previous checkpoint {path} "
                          f"(step {int(state['step'])})", stacklevel=2)
        return state
    if problems:
        raise DamagedFileError(f"no intact checkpoint in {folder}: {'; '.join(problems)}")
    return None


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        net: The trained network (on ``device``).
        history: One row per step: step, loss, kl (objective "kl"), lr, grad_norm,
            mean_len, seconds.
        seconds: Wall time of this call.
        checkpoint: Path of the last checkpoint, or None.
        device: The device it trained on (what ``device="auto"`` picked).
        autocast: Whether bf16 autocast was on (CUDA only).
        threads: torch intra-op CPU threads used (what ``threads="auto"`` picked).
    """

    net: AmortizedPosterior
    history: pd.DataFrame
    seconds: float
    checkpoint: Path | None
    device: torch.device = torch.device("cpu")
    autocast: bool = False
    threads: int = 1

    def __repr__(self) -> str:
        """One line: steps, final loss, seconds, device, threads and checkpoint.

        The network and the history are left out (read ``.net`` and ``.history``).
        """
        h = self.history
        rows = len(h) if isinstance(h, pd.DataFrame) else 0
        steps = int(h["step"].iloc[-1]) if rows and "step" in h else rows
        loss = float(h["loss"].iloc[-1]) if rows and "loss" in h else math.nan
        amp = ", autocast=True" if self.autocast else ""
        return (
            f"TrainResult(steps={steps}, final_loss={loss:.4g}, seconds={self.seconds:.2f}, "
            f"device='{self.device}'{amp}, threads={self.threads}, "
            f"checkpoint={short_path(self.checkpoint)})"
        )


def _step_seed(seed: int, step: int, shard: int) -> int:
    return (seed * 1_000_003 + step * 7919 + shard * 104_729) % (2**31 - 1)


def _check_lengths(distribution: str) -> None:
    check_choice(distribution, "lengths", LENGTH_DISTRIBUTIONS)


def training_lengths(n: int, seq_len: int | tuple[int, int], *,
                     distribution: str = "log-uniform", seed: int = 0) -> torch.Tensor:
    """Sequence lengths as :func:`train` draws them: ``n`` integers in ``[low, high]``.

    Args:
        n: How many lengths.
        seq_len: An int (every length equal) or a ``(low, high)`` range.
        distribution: ``"log-uniform"`` (default: ``L = floor(exp(u))`` with u uniform on
            ``[log low, log(high + 1))``, so each doubling of L gets the same share) or
            ``"uniform"`` (every integer equally likely).
        seed: Seed of the draw (the global RNG is left alone).

    Returns:
        An int64 tensor of shape ``(n,)``.
    """
    low, high = length_range(seq_len)
    _check_lengths(distribution)
    gen = torch.Generator().manual_seed(int(seed))
    if low == high:
        return torch.full((n,), low, dtype=torch.int64)
    if distribution == "uniform":
        return torch.randint(low, high + 1, (n,), generator=gen)
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    logs = math.log(low) + u * (math.log(high + 1) - math.log(low))
    return logs.exp().floor().long().clamp(low, high)


def _with_lengths(batch: SetBatch, low: int, high: int, seed: int,
                  distribution: str = "log-uniform") -> SetBatch:
    """Mask a full-length batch down to per-sequence lengths drawn in [low, high]."""
    if low == high:
        return batch
    lengths = training_lengths(batch.num_sequences, (low, high), distribution=distribution,
                               seed=seed)
    mask = torch.arange(high)[None, :] < lengths[:, None]  # (B, L)
    return SetBatch(batch.z, batch.x, batch.y, mask.to(batch.x.device))


def fixed_training_set(
    model: ExchangeableModel,
    train_size: int,
    seq_len: int | tuple[int, int],
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    lengths: str = "log-uniform",
) -> SetBatch:
    """The fixed training set that ``train(..., train_size=N, seed=seed)`` draws from.

    Use it to evaluate a network on exactly the sequences it was trained on (the
    training loss of a generalisation study).

    Args:
        model: The model to simulate from.
        train_size: N, the number of sequences.
        seq_len: An int or a ``(low, high)`` range, as given to :func:`train`.
        seed: The ``seed`` given to :func:`train`.
        device: Where the tensors live.
        lengths: The length distribution given to :func:`train`.

    Returns:
        A :class:`~bayesattn.models.SetBatch` of N sequences, padded to ``high`` with a
        mask when the lengths vary.
    """
    check_int(train_size, "train_size", low=1)
    low, high = length_range(seq_len)
    full = model.simulate(int(train_size), high, seed=_step_seed(seed, -1, 0), device=device)
    return _with_lengths(full, low, high, _step_seed(seed, -2, 0), lengths)


class _Data:
    """Batches for each step: fresh simulations, or draws from a fixed set of N sequences.

    A step's batch is made of shards, each simulated with its own seed. Under torchrun
    rank r simulates shard r; one process with ``data_shards=k`` simulates all k shards
    and concatenates them, so both see the same data.
    """

    def __init__(self, model, batch_size, seq_len, seed, device, train_size, shard_ids,
                 lengths="log-uniform"):
        self.model, self.seed, self.device, self.lengths = model, seed, device, lengths
        self.low, self.high = length_range(seq_len)
        self.shard_ids = shard_ids
        if batch_size % len(shard_ids):
            raise ValueError(
                f"batch_size {batch_size} must be a multiple of data_shards {len(shard_ids)}."
            )
        self.shard_size = batch_size // len(shard_ids)
        self.batch_size = batch_size
        self.fixed = None
        if train_size is not None:
            self.fixed = fixed_training_set(model, train_size, seq_len, seed=seed, device=device,
                                            lengths=lengths)

    def _shard(self, step: int, shard: int) -> SetBatch:
        s = _step_seed(self.seed, step, shard)
        if self.fixed is not None:
            gen = torch.Generator().manual_seed(s)
            idx = torch.randint(0, self.fixed.num_sequences, (self.shard_size,), generator=gen)
            return self.fixed[idx.to(self.fixed.x.device)]
        full = self.model.simulate(self.shard_size, self.high, seed=s, device=self.device)
        return _with_lengths(full, self.low, self.high, s + 1, self.lengths)

    def batch(self, step: int) -> SetBatch:
        parts = [self._shard(step, shard) for shard in self.shard_ids]
        if len(parts) == 1:
            return parts[0]
        return SetBatch(*(torch.cat([getattr(p, f) for p in parts]) for f in "zxy"),
                        mask=torch.cat([p.mask for p in parts]))


def train(net: AmortizedPosterior, model: ExchangeableModel,
          config: TrainConfig | None = None, **settings: Any) -> TrainResult:
    """Train ``net`` on simulations from ``model``.

    Args:
        net: An :class:`AmortizedPosterior` built for ``model``.
        model: The model to simulate from (its Pyro program).
        config: A :class:`~bayesattn.inference.TrainConfig`; optional.
        **settings: Fields of :class:`~bayesattn.inference.TrainConfig` (``steps``,
            ``batch_size``, ``seq_len``, ``objective``, ``lr``, ``seed``, ``device``,
            ``checkpoint_dir``, ``resume``, ...), applied on top of ``config``. Every
            setting, its default and the measurements that chose it are documented there.

    Returns:
        :class:`TrainResult`.

    Raises:
        TrainingDivergedError: the loss became NaN or inf (the last checkpoint is kept).
        ValueError: bad arguments (the message says which and why).
        TypeError: a setting that TrainConfig does not have.

    Example::

        train(net, model, steps=1000, seq_len=(8, 128))
        cfg = TrainConfig(steps=1000, seq_len=(8, 128), objective=ExactKL(samples=64))
        train(net, model, cfg, seed=1)
    """
    config = TrainConfig.make(config, **settings)
    if not isinstance(net, AmortizedPosterior):
        raise TypeError(f"net must be an AmortizedPosterior; got {type(net).__name__}.")
    if net.model.name != model.name or net.model.params != model.params:
        raise ValueError(
            f"net was built for {net.model!r} but train got {model!r}; build the network "
            "for the model you simulate from."
        )
    config.length_range()  # seq_len must be set
    objective = as_objective(config.objective, config)
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    if isinstance(config.objective, Objective) and any(
            getattr(config, k) != defaults[k] for k in ("kl_samples", "mask_fraction")):
        raise ValueError(
            f"kl_samples and mask_fraction configure the objectives given by name; set them on "
            f"the objective object instead (got objective={objective!r})")
    objective.check(model, config)

    # Train only what the objective uses: the heads of the other objectives are frozen
    # for this call (so neither DDP nor AdamW sees parameters without gradients).
    heads = {"posterior": net.head, "target": net.target_head, "token": net.token_head}
    frozen = [p for k, h in heads.items() if k != objective.output for p in h.parameters()]
    was_trainable = [p.requires_grad for p in frozen]
    for p in frozen:
        p.requires_grad_(False)
    # torch.compile turns distribution argument checks off for the whole process
    # (Distribution.set_default_validate_args(False)); put the caller's setting back.
    validate_args = torch.distributions.Distribution._validate_args
    try:
        with torch_threads(config.threads) as n_threads:
            result = _train(net, model, config, objective)
        result.threads = n_threads
        return result
    finally:
        torch.distributions.Distribution.set_default_validate_args(validate_args)
        for p, flag in zip(frozen, was_trainable, strict=True):
            p.requires_grad_(flag)


def _train(net: AmortizedPosterior, model: ExchangeableModel, config: TrainConfig,
           objective: Objective) -> TrainResult:
    from bayesattn._progress import progress_bar

    c = config
    steps, batch_size, seed, lr, grad_clip = c.steps, c.batch_size, c.seed, c.lr, c.grad_clip

    dist = torch.distributed
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    rank = dist.get_rank() if world > 1 else 0
    device = resolve_device(c.device)
    if world > 1 and device.type == "cuda" and device.index is None:
        # one GPU per process: torchrun's LOCAL_RANK (a bare "cuda" would put every rank
        # on GPU 0 and hand DDP device_ids=[None])
        local = int(os.environ.get("LOCAL_RANK", rank % max(1, torch.cuda.device_count())))
        device = torch.device("cuda", local)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    net.to(device)
    module = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        module = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    if c.compile:  # compile the forward pass only; net and its state_dict keys stay as they are
        module = torch.compile(module)
    warmup = max(1, int(0.05 * steps)) if c.warmup_steps is None else int(c.warmup_steps)
    trainable = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=c.weight_decay)

    def schedule(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    shard_ids = [rank] if world > 1 else list(range(c.data_shards))
    data = _Data(model, int(batch_size), c.seq_len, int(seed), device, c.train_size, shard_ids,
                 c.lengths)
    run_config = {"steps": int(steps), "batch_size": int(batch_size), "seq_len": list(
        c.length_range()), "lengths": c.lengths, "objective": objective.name,
        "seed": int(seed), "train_size": c.train_size, "world_size": world,
        "data_shards": len(shard_ids),
        # the optimisation settings too: resume restores the optimizer and scheduler, so a
        # changed lr (etc.) would otherwise be dropped without a word
        "lr": float(lr), "weight_decay": float(c.weight_decay), "warmup_steps": int(warmup),
        "grad_clip": float(grad_clip), "kl_samples": int(c.kl_samples),
        "mask_fraction": float(c.mask_fraction), **objective.settings()}
    ckpt = Path(c.checkpoint_dir) / CHECKPOINT if c.checkpoint_dir is not None else None
    history: list[dict[str, float]] = []
    start_step = 0
    autocast = device.type == "cuda"

    with seeded(int(seed) + 17 * rank, device):
        state = load_checkpoint(ckpt.parent, device) if c.resume and ckpt is not None else None
        if state is not None:
            if state["run_config"] != run_config:
                old = state["run_config"]
                diff = ", ".join(f"{k}: checkpoint {old.get(k, '(not recorded)')!r}, this run "
                                 f"{run_config.get(k, '(not recorded)')!r}"
                                 for k in sorted(set(old) | set(run_config))
                                 if old.get(k) != run_config.get(k))
                raise ValueError(
                    f"checkpoint {ckpt} was written by a different run ({diff}). Resume with "
                    "the same settings, or train into another checkpoint_dir.")
            net.load_state_dict(state["net"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            history = list(state["history"])
            start_step = int(state["step"])

        def save(step: int) -> None:
            if ckpt is None or rank != 0:
                return
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            if ckpt.exists():  # keep one checkpoint back, in case the newest gets damaged
                os.replace(ckpt, ckpt.with_name(PREVIOUS_CHECKPOINT))
            save_torch(
                {"step": step, "net": net.state_dict(), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "rng": torch.get_rng_state(),
                 "history": history, "run_config": run_config},
                ckpt,
            )

        def diverged(what: str, step: int) -> TrainingDivergedError:
            where = f"; the last good checkpoint is {ckpt}" if ckpt and ckpt.exists() else ""
            return TrainingDivergedError(
                f"{what} at step {step + 1}{where}. Lower lr or check the inputs."
            )

        t0 = time.perf_counter()
        net.train()
        bar = progress_bar(range(start_step, steps), initial=start_step, total=steps,
                           disable=not c.progress or rank != 0, desc=f"train {model.name}")
        for step in bar:
            batch = data.batch(step)
            mask, hidden = batch.mask, objective.hide(batch, _step_seed(seed, step, 7))
            if hidden is not None:
                mask = batch.mask & ~hidden  # the network sees the visible tokens only
            try:
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                    # q(z | x), p(y | x) or p(token | visible); heads run in float32
                    q = module(batch.x, mask, output=objective.output)
                loss, kl = objective.loss(net, q, batch, hidden)
            except ValueError as err:  # a distribution refusing non-finite parameters
                if all(torch.isfinite(p).all() for p in net.parameters()):
                    raise
                raise diverged("the network's parameters became non-finite", step) from err
            logged = torch.tensor([float(loss.detach()), kl], dtype=torch.float64, device=device)
            if world > 1:  # log the mean over ranks, so every rank sees the same numbers
                dist.all_reduce(logged)
                logged /= world
            loss_value, kl = float(logged[0]), float(logged[1])
            if not math.isfinite(loss_value):
                raise diverged(f"the loss became {loss_value}", step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, grad_clip)
            if not torch.isfinite(grad_norm):  # before opt.step: the weights stay good
                raise diverged(f"the gradient norm became {float(grad_norm)}", step)
            opt.step()
            sched.step()
            row = {"step": step + 1, "loss": loss_value, "kl": kl,
                   "lr": float(sched.get_last_lr()[0]), "grad_norm": float(grad_norm),
                   "mean_len": float(batch.mask.sum(-1).float().mean()),
                   "seconds": time.perf_counter() - t0}
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            if (step + 1) % c.checkpoint_every == 0 or step + 1 == steps:
                save(step + 1)
            if c.callback is not None:
                c.callback(step + 1, row, net)
        bar.close()
    net.eval()
    return TrainResult(net=net, history=pd.DataFrame(history),
                       seconds=time.perf_counter() - t0, checkpoint=ckpt, device=device,
                       autocast=autocast)

"""``TrainConfig``: every setting of :func:`~bayesattn.inference.train`, written once.

A frozen, validated dataclass. ``train(net, model, config)`` takes one;
``train(net, model, steps=..., seq_len=...)`` builds one from the keywords, and
``train(net, model, config, lr=1e-2)`` changes a field of a given one. The gap studies
(:func:`~bayesattn.gaps.generalisation_gap`,
:func:`~bayesattn.gaps.masked_token_transfer`) take the same object, so no study has
training defaults of its own.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bayesattn._checks import check_choice, check_int, check_number, length_range

from ._objectives import MaskedTokens, Objective

LENGTH_DISTRIBUTIONS = ("log-uniform", "uniform")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How :func:`~bayesattn.inference.train` trains a network. Every field is checked
    when the config is made; a bad value raises ``ValueError`` naming it.

    Attributes:
        steps: Number of optimisation steps (in total, counting resumed ones).
        batch_size: Sequences per step (per process under torchrun).
        seq_len: Tokens per sequence, an int or a ``(low, high)`` range (drawn per
            sequence). None only in a config given to a study that sets the lengths.
        objective: A registered name (``"npe"``, ``"kl"``, ``"supervised"``, ``"mtp"``;
            see ``OBJECTIVES``) or an :class:`~bayesattn.inference.Objective` instance.
        lengths: How lengths are drawn from a ``seq_len`` range: ``"log-uniform"``
            (default) or ``"uniform"`` (see :func:`~bayesattn.inference.training_lengths`).
            Log-uniform was chosen by measurement: with uniform lengths on [8, 128] the
            short end is fit worst (issue 12: KL at L = 8 was 7x that at L = 128).
        seed: Seeds simulation, lengths and dropout; the global RNG is left alone.
        device: ``"auto"`` (CUDA when present, with bf16 autocast), ``"cpu"`` or
            ``"cuda"`` (or ``"cuda:i"``). Under torchrun, ``"auto"`` / ``"cuda"`` put each
            rank on GPU ``LOCAL_RANK``.
        lr, weight_decay: AdamW settings; the learning rate warms up linearly for
            ``warmup_steps`` (default 5% of ``steps``) then follows a cosine to 0. The
            default lr 3e-3 was chosen by measurement (issue 12; normal-mean d = 2,
            one-block Set Transformer, 1,000 NPE steps of 128 sets, L in [8, 128]):
            KL(exact || q) at L = 8 / 32 / 128 was 0.78 / 0.040 / 0.14 with lr 1e-3 and
            0.18 / 0.017 / 0.035 with 3e-3 (uniform lengths); with log-uniform lengths
            0.026 / 0.0067 / 0.020 at 3e-3 and 0.026 / 0.0067 / 0.026 at 5e-3. DeepSets:
            0.040 / 0.0048 / 0.020 at 1e-3, 0.017 / 0.0037 / 0.012 at 3e-3, 0.017 /
            0.0050 / 0.018 at 1e-2.
        warmup_steps: Linear warm-up steps (None: 5% of ``steps``, at least 1).
        grad_clip: Max global gradient norm.
        train_size: If given, a fixed training set of this many sequences.
        kl_samples: Posterior draws per sequence for the Monte Carlo ``"kl"`` objective.
        mask_fraction: Fraction of real tokens hidden per sequence for ``"mtp"``.
        token_transform: ``"mtp"`` only: map the tokens ``(B, L, *token_shape)`` to the
            pretext targets the token head predicts (see
            :class:`~bayesattn.inference.MaskedTokens`). Not saved in checkpoints.
        checkpoint_dir: Folder for ``checkpoint.pt`` (written atomically every
            ``checkpoint_every`` steps and at the end; the one before is kept as
            ``checkpoint.prev.pt``, see :func:`~bayesattn.inference.load_checkpoint`).
        checkpoint_every: Steps between checkpoints.
        resume: Continue from the checkpoint in ``checkpoint_dir`` if there is one. The
            run must have the same settings (steps, batch, lengths, objective, seed,
            data, lr, weight decay, warm-up, clipping, ...); a ValueError names any that
            differ.
        compile: Run the forward pass through ``torch.compile`` (the network object and
            its checkpoints are unchanged).
        progress: Show a progress bar with the running loss (a live tqdm bar in a
            terminal or Jupyter, a few plain lines when the output is not a terminal).
        data_shards: Simulate each step's batch as this many equal shards with their own
            seeds (one process). Under torchrun every rank simulates one shard of
            ``batch_size`` sequences, so ``torchrun --nproc_per_node=k`` sees the same
            data as one process with ``batch_size * k`` and ``data_shards=k``.
        threads: torch intra-op CPU threads for the call (restored afterwards): an int,
            None (leave torch's setting) or ``"auto"`` (default): the cores idle when
            training starts (see :func:`~bayesattn.inference.resolve_threads`).
        callback: Called as ``callback(step, row, net)`` after every step.
    """

    steps: int
    batch_size: int = 128
    seq_len: int | tuple[int, int] | None = None
    objective: str | Objective = "npe"
    lengths: str = "log-uniform"
    seed: int = 0
    device: Any = "auto"
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int | None = None
    grad_clip: float = 1.0
    train_size: int | None = None
    kl_samples: int = 32
    mask_fraction: float = 0.25
    token_transform: Callable[[Any], Any] | None = None
    checkpoint_dir: str | Path | None = None
    checkpoint_every: int = 100
    resume: bool = False
    compile: bool = False
    progress: bool = True
    data_shards: int = 1
    threads: int | str | None = "auto"
    callback: Callable[[int, dict[str, float], Any], None] | None = None

    def __post_init__(self) -> None:
        for label in ("steps", "batch_size", "checkpoint_every", "data_shards", "kl_samples"):
            check_int(getattr(self, label), label, low=1)
        if self.seq_len is not None:
            pair = length_range(self.seq_len)
            object.__setattr__(self, "seq_len", pair[0] if pair[0] == pair[1] and
                               not isinstance(self.seq_len, (tuple, list)) else pair)
        check_int(self.seed, "seed", low=0)
        check_choice(self.lengths, "lengths", LENGTH_DISTRIBUTIONS)
        check_number(self.lr, "lr", low=0, low_open=True)
        check_number(self.weight_decay, "weight_decay", low=0)
        check_number(self.grad_clip, "grad_clip", low=0, low_open=True)
        if self.warmup_steps is not None:
            check_int(self.warmup_steps, "warmup_steps", low=0)
        if self.train_size is not None:
            check_int(self.train_size, "train_size", low=1)
        MaskedTokens(fraction=self.mask_fraction)  # the one check of a mask fraction
        if isinstance(self.objective, type):
            raise TypeError(f"objective: pass an instance ({self.objective.__name__}()) or a "
                            "registered name, not the class.")
        if not isinstance(self.objective, (str, Objective)):
            raise TypeError(f"objective must be a registered name or an Objective; got "
                            f"{type(self.objective).__name__}.")
        if self.token_transform is not None:
            if self.objective != "mtp" or not callable(self.token_transform):
                raise ValueError(
                    f"token_transform must be a callable and needs objective='mtp' (or "
                    f"MaskedTokens(transform=...)); got {type(self.token_transform).__name__} "
                    f"with objective={self.objective!r}.")
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir (where the checkpoint lives).")

    # ------------------------------------------------------------------ building
    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The field names, in order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def make(cls, config: TrainConfig | Mapping[str, Any] | None = None, /,
             **changes: Any) -> TrainConfig:
        """``config`` with ``changes`` applied (a new config from ``changes`` when None).

        Raises:
            TypeError: a name that is not a field (the message suggests close ones), or a
                ``config`` that is neither a TrainConfig nor a mapping.
        """
        unknown = [k for k in changes if k not in cls.fields()]
        if unknown:
            hints = [f"{k!r}" + (f" (did you mean {close[0]!r}?)" if (
                close := difflib.get_close_matches(k, cls.fields(), n=1)) else "")
                for k in unknown]
            raise TypeError(f"unknown training setting(s) {', '.join(hints)}; TrainConfig has "
                            f"{', '.join(cls.fields())}.")
        if config is None:
            return cls(**changes)
        if isinstance(config, Mapping):
            return cls.make(None, **{**dict(config), **changes})
        if not isinstance(config, cls):
            raise TypeError(f"expected a TrainConfig (or a dict of its fields); got "
                            f"{type(config).__name__}.")
        return dataclasses.replace(config, **changes) if changes else config

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (checked like a new config)."""
        return type(self).make(self, **changes)

    def length_range(self) -> tuple[int, int]:
        """``seq_len`` as ``(low, high)``.

        Raises:
            ValueError: ``seq_len`` is None.
        """
        if self.seq_len is None:
            raise ValueError("seq_len is not set: train() needs an int or a (low, high) range.")
        return length_range(self.seq_len)

"""RunContext: what a stage function sees of its run."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bayesattn._files import load_torch_file, save_torch

from ._artifacts import load as load_artifact

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ._types import Experiment


def derive_seed(seed: int, *keys: object) -> int:
    """A stable 31-bit seed from ``seed`` and ``keys`` (SHA-256; not Python's ``hash``).

    The same inputs give the same seed in every process and on every platform, and
    31 bits are accepted by NumPy, torch and JAX alike.
    """
    text = "\x1f".join([str(int(seed)), *(str(k) for k in keys)])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF


@dataclass(eq=False)
class RunContext:
    """The run as seen from inside a stage.

    Attributes:
        experiment: The :class:`Experiment` being run.
        preset: Name of the preset.
        params: The preset's parameters after overrides, as read back from JSON.
        seed: The run's seed; use :meth:`seed_for` rather than this directly.
        device: ``"cpu"`` or ``"cuda"`` (already resolved from ``"auto"``).
        out: The folder the run writes into (during ``overwrite`` a sibling temporary
            folder that replaces the old one when the run succeeds). Extra files a
            stage writes should go under it.
        results: Tables of the finished stages by stage name, as read back from their
            CSV files (so a resumed run sees exactly what a fresh one sees).
        progress: Whether progress bars are shown.
        stage: Name of the stage now running (None outside stages).
    """

    experiment: Experiment
    preset: str = "quick"
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "cpu"
    out: Path = field(default_factory=lambda: Path("."))
    results: dict[str, pd.DataFrame] = field(default_factory=dict)
    progress: bool = False
    stage: str | None = None
    _index: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict, repr=False)
    _cache: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def seed_for(self, stage: str, *keys: object) -> int:
        """A stable seed for ``stage`` (and optional sub-keys such as a length L).

        Args:
            stage: Stage name (or any label).
            *keys: Further labels, e.g. ``ctx.seed_for("train", L)``.

        Returns:
            An int in [0, 2**31) derived from (``self.seed``, stage, keys) with SHA-256.
        """
        return derive_seed(self.seed, stage, *keys)

    @property
    def stage_seed(self) -> int:
        """``seed_for(stage)`` for the stage now running."""
        if self.stage is None:
            raise RuntimeError("stage_seed is only defined while a stage runs")
        return self.seed_for(self.stage)

    @property
    def figures_dir(self) -> Path:
        """``out / "figures"`` (created on access)."""
        path = Path(self.out) / "figures"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def artifacts(self) -> Mapping[str, Mapping[str, Any]]:
        """Artifacts of the finished stages: ``ctx.artifacts[stage][key]``, loaded lazily."""
        return _ArtifactView(self)

    def artifact(self, stage: str, key: str) -> Any:
        """Load (once) the artifact ``key`` saved by the finished stage ``stage``.

        Raises:
            KeyError: No such stage or key; the message lists what there is.
        """
        entries = self._index.get(stage)
        if entries is None:
            raise KeyError(
                f"no finished stage {stage!r} with artifacts; stages with artifacts: "
                f"{sorted(self._index)}"
            )
        if key not in entries:
            raise KeyError(f"stage {stage!r} saved no artifact {key!r}; it saved {sorted(entries)}")
        if (stage, key) not in self._cache:
            self._cache[(stage, key)] = load_artifact(self.out, entries[key])
        return self._cache[(stage, key)]

    def artifact_path(self, stage: str, key: str) -> Path:
        """Path of a saved artifact (to open it yourself)."""
        entries = self._index.get(stage, {})
        if key not in entries:
            self.artifact(stage, key)  # raises the explanatory KeyError
        return Path(self.out) / entries[key]["path"]

    def checkpoint_dir(self, key: str) -> Path:
        """``out/checkpoints/<stage>-<key>/``: where :meth:`train` keeps a network's
        checkpoints while its stage runs (removed once the stage has finished)."""
        if self.stage is None:
            raise RuntimeError("checkpoint_dir is only defined while a stage runs")
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(key)).strip("_") or "net"
        return Path(self.out) / "checkpoints" / f"{self.stage}-{safe}"

    def train(self, key: str, net: Any, model: Any, config: Any = None,
              **kwargs: Any) -> Any:
        """:func:`bayesattn.inference.train` that survives a killed run.

        It checkpoints into :meth:`checkpoint_dir` (``key`` names the network, unique
        within the stage) and resumes from there: a run killed mid-training continues
        from its last checkpoint on ``--resume`` instead of starting the network again,
        and, since resume is exact on a CPU, produces the same bytes. Other arguments go
        to ``train`` unchanged: a :class:`~bayesattn.inference.TrainConfig` and/or its
        fields as keywords.
        """
        from bayesattn.inference import train

        if config is None or "progress" in kwargs:
            kwargs.setdefault("progress", self.progress)
        return train(net, model, config, checkpoint_dir=self.checkpoint_dir(key), resume=True,
                     **kwargs)

    def loop_checkpoint(self, key: str, **objects: Any) -> LoopCheckpoint:
        """Resume state for a stage's own training loop (one that does not use :meth:`train`).

        ``objects`` are what the loop changes: modules, optimizers and schedulers (saved
        by ``state_dict``) and ``torch.Generator`` s (saved by ``get_state``). If a killed
        run left a checkpoint in :meth:`checkpoint_dir` (``key``), their states are restored
        now and ``.start`` / ``.extra`` say where the loop was; call ``.save(step, **extra)``
        every so many steps. Removed with the stage's other checkpoints when it finishes.
        """
        return LoopCheckpoint(self.checkpoint_dir(key), objects)

    def tqdm(self, iterable: Any = None, **kwargs: Any) -> Any:
        """A progress bar for use inside a stage (below the stage bar, disappears when done).

        tqdm's interface; a live tqdm bar in a terminal or Jupyter, a few plain lines
        when the output is not a terminal, nothing when the run has ``progress=False``
        (see ``bayesattn._progress.progress_bar``).
        """
        from bayesattn._progress import progress_bar

        kwargs.setdefault("disable", not self.progress)
        kwargs.setdefault("leave", False)
        kwargs.setdefault("position", 1)
        kwargs.setdefault("dynamic_ncols", True)
        return progress_bar(iterable, **kwargs)


class _ArtifactView(Mapping):
    """``stage -> key -> artifact``, loading each artifact on first access."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx

    def __getitem__(self, stage: str) -> Mapping[str, Any]:
        if stage not in self._ctx._index:
            raise KeyError(stage)
        return _StageArtifacts(self._ctx, stage)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ctx._index)

    def __len__(self) -> int:
        return len(self._ctx._index)


class _StageArtifacts(Mapping):
    def __init__(self, ctx: RunContext, stage: str) -> None:
        self._ctx, self._stage = ctx, stage

    def __getitem__(self, key: str) -> Any:
        if key not in self._ctx._index[self._stage]:
            raise KeyError(key)
        return self._ctx.artifact(self._stage, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ctx._index[self._stage])

    def __len__(self) -> int:
        return len(self._ctx._index[self._stage])


class LoopCheckpoint:
    """Checkpoint and resume a stage's own training loop (see :meth:`RunContext.loop_checkpoint`).

    Attributes:
        start: The step to continue from (0 for a fresh loop).
        extra: What the last :meth:`save` stored besides the objects (e.g. the losses so
            far); ``{}`` for a fresh loop.
    """

    def __init__(self, folder: Path, objects: Mapping[str, Any]) -> None:
        self.folder, self.objects = folder, dict(objects)
        self.start, self.extra = 0, {}
        path = folder / "loop.pt"
        if path.exists():
            state = load_torch_file(path, what="loop checkpoint")
            for name, obj in self.objects.items():
                if isinstance(obj, torch_generator()):
                    obj.set_state(state["objects"][name])
                else:
                    obj.load_state_dict(state["objects"][name])
            self.start, self.extra = int(state["step"]), dict(state["extra"])

    def save(self, step: int, **extra: Any) -> None:
        """Store the objects' states, ``step`` (the next step to run) and ``extra``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        states = {name: obj.get_state() if isinstance(obj, torch_generator())
                  else obj.state_dict() for name, obj in self.objects.items()}
        save_torch({"step": int(step), "objects": states, "extra": extra},
                   self.folder / "loop.pt")


def torch_generator() -> type:
    import torch

    return torch.Generator

"""Named, reproducible experiments behind the claims in docs/claims.md (P1-P14, E1-E8).

An :class:`Experiment` is a list of cached :class:`Stage` functions plus the code
that turns their tidy tables into :class:`Verdict` objects, figures and a headline
table. :func:`run` executes one into a run folder (``config.json``, ``results.csv``,
``verdicts.json``, ``figures/``, ``report.md``); the ``bayesattn`` command wraps it
(``bayesattn list``, ``bayesattn run NAME``, ``bayesattn report DIR``).

Example::

    from bayesattn import experiments as ex

    def simulate(ctx):
        rng = np.random.default_rng(ctx.seed_for("simulate"))
        return pd.DataFrame({"L": ..., "value": ...})

    ex.register(ex.Experiment(
        name="my-check", title="...", claims=("P4",), description="...",
        presets={"smoke": {"n": 8}, "quick": {"n": 64}, "full": {"n": 1024}},
        stages=(ex.Stage("simulate", simulate),),
        verdicts=lambda results, params: [ex.Verdict(...)],
    ))
    ex.run("my-check", preset="smoke")
"""

from __future__ import annotations

from ._context import RunContext
from ._convergence import convergence_row
from ._cost import CpuEstimate, estimate_cpu_seconds
from ._errors import (
    DeviceUnavailableError,
    DiskFullError,
    ExperimentError,
    InvalidParameterError,
    NotARunFolderError,
    OutputExistsError,
    OutputNotWritableError,
    ResumeMismatchError,
    RunFolderLockedError,
    UnknownExperimentError,
    UnknownPresetError,
)
from ._folder import load_run
from ._registry import get, names, register, unregister
from ._runner import run
from ._settings import resolve_params
from ._types import (
    NOT_ASSESSED,
    VERDICTS,
    Experiment,
    RunResult,
    Stage,
    StageOutput,
    Verdict,
)

# ---------------------------------------------------------------- built-in experiments
# Modules that register the built-in experiments when imported, as absolute names or
# names relative to this package (e.g. ".length_gap"). names() and get() import them
# on first use, so `import bayesattn.experiments` stays light: those modules must
# import torch / pyro / jax / arviz only inside their stage functions.
_BUILTIN_MODULES: tuple[str, ...] = (
    ".gap_vs_length",
    ".attention_is_bayes",
    ".generalisation",
    ".representations",
    ".mtp_transfer",
    ".length_awareness",
    ".heads_width",
    ".oversmoothing_boosting",
    ".denoising_1d",
    ".contamination_attention",
    ".denoising_2d",
    ".robust_encoders",
    ".change_point_attention",
)

__all__ = [
    "NOT_ASSESSED",
    "VERDICTS",
    "CpuEstimate",
    "DeviceUnavailableError",
    "DiskFullError",
    "Experiment",
    "ExperimentError",
    "InvalidParameterError",
    "NotARunFolderError",
    "OutputExistsError",
    "OutputNotWritableError",
    "ResumeMismatchError",
    "RunContext",
    "RunFolderLockedError",
    "RunResult",
    "Stage",
    "StageOutput",
    "UnknownExperimentError",
    "UnknownPresetError",
    "Verdict",
    "convergence_row",
    "estimate_cpu_seconds",
    "get",
    "load_run",
    "names",
    "register",
    "resolve_params",
    "run",
    "unregister",
]

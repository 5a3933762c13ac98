"""Named, reproducible experiments behind the claims in docs/claims.md (P1-P14, E1-E8).

Each built-in experiment is a package here (``experiments/<name>/``): ``presets``
(parameters, model, cost), ``stages`` (what runs, cached in the run folder),
``claims`` (decision rules, verdicts, headline and convergence tables) and ``figures``
(drawing only, from what the run folder holds). The machinery that runs them is
:mod:`bayesattn.runner`, re-exported here.

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

from bayesattn import runner as _runner
from bayesattn.runner import *  # noqa: F403 - the runner's API, re-exported unchanged

__all__ = list(_runner.__all__)

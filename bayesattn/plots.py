"""Figures: a local seaborn theme, Agg-safe figures and atomic PNG + SVG saving.

Nothing here touches global matplotlib state: :func:`set_style` applies the theme
inside a ``matplotlib.rc_context`` only, :func:`subplots` makes figures that pyplot
does not manage (no GUI backend, nothing to close), and :func:`save_figure` writes
files through temporary names. matplotlib and seaborn are imported on first use.

Example::

    from bayesattn import plots

    with plots.set_style():
        fig, ax = plots.subplots(figsize=(4, 3))
        ax.loglog(L, kl, marker="o")
        paths = plots.save_figure(fig, ctx.figures_dir, "kl-vs-length")  # [png, svg]
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bayesattn._files import atomic_path

#: Resolution of saved PNG files.
DPI = 150
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@contextmanager
def set_style(
    style: str = "whitegrid",
    context: str = "notebook",
    palette: str = "colorblind",
    font_scale: float = 1.0,
    rc: Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """Apply a seaborn theme to the figures made inside the ``with`` block only.

    Args:
        style: seaborn axes style (``"whitegrid"``, ``"ticks"``, ...).
        context: seaborn plotting context (``"paper"``, ``"notebook"``, ``"talk"``).
        palette: seaborn colour palette for the colour cycle.
        font_scale: Scale of all fonts.
        rc: Extra matplotlib rc parameters, applied last.
    """
    import matplotlib as mpl
    import seaborn as sns
    from cycler import cycler

    params: dict[str, Any] = {}
    params.update(sns.axes_style(style))
    params.update(sns.plotting_context(context, font_scale=font_scale))
    params["axes.prop_cycle"] = cycler(color=sns.color_palette(palette))
    params.update(dict(rc or {}))
    with mpl.rc_context(params):
        yield


def subplots(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None, **kwargs: Any
) -> tuple[Any, Any]:
    """``(figure, axes)`` like ``plt.subplots`` but without pyplot (constrained layout).

    Args:
        nrows: Rows of axes.
        ncols: Columns of axes.
        figsize: (width, height) in inches.
        **kwargs: Passed to ``Figure.subplots`` (``sharex``, ``squeeze``, ...).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(nrows, ncols, **kwargs)


def save_figure(
    fig: Any, folder: str | os.PathLike[str], name: str, *, close: bool = True
) -> list[Path]:
    """Save ``fig`` as ``folder/name.png`` (dpi :data:`DPI`) and ``folder/name.svg``.

    Each file is written under a temporary name and moved into place, so a reader
    never sees a partial figure. The SVG carries no date and stable ids, so the same
    figure gives the same bytes.

    Args:
        fig: A matplotlib Figure, or anything with a ``.figure`` (an Axes, a seaborn
            FacetGrid / JointGrid).
        folder: Folder to write into (created if missing).
        name: File name without extension (``[A-Za-z0-9][A-Za-z0-9_.-]*``).
        close: Also close the figure in pyplot if pyplot manages it.

    Returns:
        ``[png_path, svg_path]``, ready to be collected by an experiment's ``figures``.
    """
    import matplotlib as mpl
    from matplotlib.figure import Figure

    for _ in range(3):  # Axes -> (Sub)Figure -> Figure; seaborn grids -> Figure
        if isinstance(fig, Figure):
            break
        fig = getattr(fig, "figure", None)
    if not isinstance(fig, Figure):
        raise TypeError("save_figure expects a matplotlib Figure (or an object with .figure)")
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith((".png", ".svg")):
        raise ValueError(
            f"figure name must be file-name safe and without extension, e.g. 'kl-vs-length'; "
            f"got {name!r}"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    png, svg = folder / f"{name}.png", folder / f"{name}.svg"
    with mpl.rc_context({"svg.hashsalt": "bayesattn"}):
        for path, fmt, meta in ((png, "png", {}), (svg, "svg", {"Date": None})):
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=DPI, metadata=meta, bbox_inches="tight")
    if close and "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close(fig)
    return [png, svg]

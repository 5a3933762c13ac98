"""``report.md`` for a run folder (the public face of :mod:`bayesattn.runner`'s report).

``write_report(out)`` (re)writes ``out/report.md`` from the files of a finished run
folder and returns its path; ``render_report(out)`` returns the text. The report is a
pure function of the run folder, so ``bayesattn report DIR`` regenerates the same text.
"""

from __future__ import annotations

from bayesattn.runner import (
    format_verdicts,
    frame_to_markdown,
    markdown_table,
    render_report,
    write_report,
)

__all__ = ["format_verdicts", "frame_to_markdown", "markdown_table", "render_report",
           "write_report"]

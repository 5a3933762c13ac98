"""``python -m bayesattn ...`` is the ``bayesattn`` command."""

from bayesattn.cli import main

raise SystemExit(main())

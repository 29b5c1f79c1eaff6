"""`python -m nnio_tui` runs the same entry point as the `nnio-tui` command."""

from nnio_tui.cli import main

raise SystemExit(main())

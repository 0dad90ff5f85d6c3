"""`python -m pyruntime` runs the same entry point as the console script."""

from pyruntime.cli.main import main

raise SystemExit(main())

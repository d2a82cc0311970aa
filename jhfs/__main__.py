"""`python -m jhfs` is the `jhfs` command."""

from jhfs.cli import main

raise SystemExit(main())

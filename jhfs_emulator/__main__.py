"""`python -m jhfs_emulator` runs the emulator (see jhfs_emulator.cli)."""

from jhfs_emulator.cli import main

raise SystemExit(main())

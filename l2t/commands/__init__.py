"""The command layer: the CLI and what each command runs (train-teacher, teach, compare,
sweep, bench). The only layer that reads a whole `Config` (docs/design.md §2)."""

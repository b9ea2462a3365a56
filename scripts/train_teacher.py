"""Same as `l2t train-teacher ...`, for `python scripts/train_teacher.py key=value ...`."""

import sys

from l2t.commands.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-teacher", *sys.argv[1:]]))

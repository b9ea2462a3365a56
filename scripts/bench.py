"""Same as `l2t bench ...`: the performance harness (figures go to BENCHMARKS.md)."""

import sys

from l2t.commands.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))

"""`python -m l2t ...` is the `l2t` command (also under `torchrun`, which runs modules)."""

import sys

from l2t.cli import main

sys.exit(main())

"""`python -m l2t ...` is the `l2t` command (also under `torchrun`, which runs modules)."""

import os
import sys

from l2t.commands.cli import main

code = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # a torchrun worker whose work is written and whose process group is closed: leave
    # without C++ static teardown, where gloo's threads abort about one exit in 30
    # ("terminate called without an active exception", measured on torch 2.13)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)

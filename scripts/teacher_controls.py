"""What a meta-trained control teacher learned, even where selection kept the untrained one
(RESULTS.md, issue 33 3(b)): the last trained teacher of a run (its checkpoint's, not
teacher.pt's) teaches one student, and the composite controls it sets are printed every
`every` teacher steps, beside the base point's, with the size of the weight net's output
layer (0: every sample weighed alike).

    python scripts/teacher_controls.py RUN_DIR [seed=12345] [every=40]
    e.g. python scripts/teacher_controls.py runs/unlabeled/greedy
"""

from __future__ import annotations

import sys

import torch

from l2t.config import load_config, parts, teachers
from l2t.engine.lifetime import Lifetime, Step
from l2t.engine.teaching import EpisodeResult, run_student
from l2t.io.checkpoint import load_checkpoint
from l2t.io.threads import configure
from l2t.losses.composite import CONTROLS


def main(argv: list[str]) -> None:
    run = argv[0]
    options = dict(a.split("=", 1) for a in argv[1:])
    seed, every = int(options.get("seed", 12345)), int(options.get("every", 40))
    cfg = load_config(f"{run}/config.yaml", ["resume=false"])
    if cfg.loss.family != "composite":
        raise SystemExit(f"{run} is not a composite run (loss.family={cfg.loss.family})")
    configure(1)
    task = parts.task(cfg, parts.splits(cfg, torch.device("cpu")))
    base = parts.base_loss(cfg)
    teacher = teachers.teacher(cfg, base)
    teacher.load_state_dict(load_checkpoint(f"{run}/checkpoint.pt")["teacher"])
    print("base point: " + _controls(base[0]))

    def show(step: Step, before: Lifetime, so_far: EpisodeResult) -> None:
        if before.t % every == 0:
            weight_net = float(step.params[3].abs().sum() + step.params[4].abs().sum())
            print(
                f"step {before.student.step}: {_controls(step.params[0])}; "
                f"weight net output layer |w| {weight_net:.3f}"
            )

    result = run_student(task, teacher, teacher.theta(), seed, cfg.steps, on_step=show)
    print(f"student {seed}: val {result.val_acc:.4f}")


def _controls(values: torch.Tensor) -> str:
    return ", ".join(f"{n} {v:.3f}" for n, v in zip(CONTROLS, values.tolist()) if v)


if __name__ == "__main__":
    main(sys.argv[1:])

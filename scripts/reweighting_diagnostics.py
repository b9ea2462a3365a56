"""Why Learning-to-Reweight helps on cross-entropy and hurts on SCE (RESULTS.md, 40% noise).

Trains one student per (loss, weighting) at the run's settings, on the one step function
(`run_student` under a `Reweighted` policy, as `compare`'s `l2rw_base`), and prints every
500 steps: the fraction of samples L2RW keeps (weight > 0), the share of the batch's weight on
samples whose label the noise changed (uniform: the noise rate), the norm of the step's
gradient, and the validation accuracy. Usage (one process per loss x weighting):

    python scripts/reweighting_diagnostics.py LOSS WEIGHTING SEED [key=value ...]
    e.g. python scripts/reweighting_diagnostics.py sce l2rw 0 label_noise=0.4 optim.lr=0.3 \
        optim.cosine=true

LOSS is a composite point (ce, sce, ...), WEIGHTING `l2rw` or `uniform`.
"""

from __future__ import annotations

import statistics
import sys

import torch
from torch import Tensor

from l2t.config import load_config, parts
from l2t.engine.lifetime import Lifetime, Observation, Step
from l2t.engine.student_state import SGDStep
from l2t.engine.task import Task
from l2t.engine.teaching import EpisodeResult, accuracy_of, run_student
from l2t.io.threads import configure
from l2t.losses.composite import parse_ranges
from l2t.methods.reweighting import BasePoint, Reweighted, l2rw_weights

EVERY = 500


class Recorded(Reweighted):
    """L2RW (or uniform weights) on the composite's per-sample loss at the base point, on
    the one step function, recording each SGD step's weights and gradient norm."""

    def __init__(self, task: Task, weighting: str, seed: int, base: BasePoint, noisy: Tensor):
        super().__init__(task, "l2rw", seed, base)
        self.task, self.weighting, self.seed, self.noisy = task, weighting, seed, noisy
        self.t = self.i = 0  # the teacher step and its SGD step (batches are seeded by them)
        self.kept: list[float] = []
        self.noisy_share: list[float] = []
        self.norms: list[float] = []

    def propose(
        self, theta: dict[str, Tensor], state: dict[str, Tensor], obs: Observation
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        self.t, self.i = round(obs.progress * self.task.steps) // self.task.k, 0
        return super().propose(theta, state, obs)

    def objective(self, step: SGDStep) -> Tensor:
        losses = self.samplewise(step.forward(step.params, step.x), step.y)
        if self.weighting == "l2rw":
            args = (step.params, losses, step.lr, step.x_val, step.y_val)
            w = l2rw_weights(step.forward, *args).detach()
        else:
            w = torch.full_like(losses, 1 / len(losses))
        loss = (w * losses).sum()
        grads = torch.autograd.grad(loss, step.params, retain_graph=True)
        index = self.task.train_indices(self.seed, self.t)[self.i]
        self.kept.append((w > 0).float().mean().item())
        self.noisy_share.append((w * self.noisy[index]).sum().item())
        self.norms.append(torch.sqrt(sum((g**2).sum() for g in grads)).item())
        self.i += 1
        return loss


def main(argv: list[str]) -> None:
    loss, weighting, seed = argv[0], argv[1], int(argv[2])
    overrides = ["loss.family=composite", f"loss.base={loss}", *argv[3:]]
    cfg = load_config("configs/mnist1d_mlp_composite.yaml", overrides)
    configure(1)
    splits = parts.splits(cfg)
    if splits.noise is None:
        raise SystemExit("set label_noise=RATE: the diagnostics measure weight on noisy labels")
    task = parts.task(cfg, splits)
    assert task.composite is not None
    base = BasePoint(task.composite, parts.base_loss(cfg), parse_ranges(cfg.loss.ranges))
    noisy = torch.zeros(len(splits.y_train), dtype=torch.bool)
    noisy[torch.as_tensor(splits.noise.index)] = True
    policy = Recorded(task, weighting, seed, base, noisy)

    def val_acc(life: Lifetime) -> float:
        return accuracy_of(task, life.student, splits.x_val, splits.y_val)

    def report(step: Step, before: Lifetime, so_far: EpisodeResult) -> None:
        done = step.life.student.step
        if done // EVERY == before.student.step // EVERY and done < task.steps:
            return
        print(
            f"{loss} {weighting} step {done}: kept {statistics.fmean(policy.kept):.2f} "
            f"noisy share {statistics.fmean(policy.noisy_share):.2f} "
            f"|grad| {statistics.fmean(policy.norms):.2f} val {val_acc(step.life):.3f}",
            flush=True,
        )
        policy.kept, policy.noisy_share, policy.norms = [], [], []

    run_student(task, policy, {}, seed, EVERY, on_step=report)


if __name__ == "__main__":
    main(sys.argv[1:])

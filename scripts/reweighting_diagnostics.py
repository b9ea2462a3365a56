"""Why Learning-to-Reweight helps on cross-entropy and hurts on SCE (RESULTS.md, 40% noise),
and what it does on KD's base point with an unlabeled pool (RESULTS.md, issue 33).

Trains one student per (loss, weighting) at the run's settings, on the one step function
(`run_student` under a `Reweighted` policy, as `compare`'s `l2rw_base`), and prints every
500 steps: the fraction of samples L2RW keeps (weight > 0), the effective number of samples
(1 / sum w^2: the batch size for uniform weights), the largest weight, the share of the
batch's weight on samples whose label is wrong (the noise changed it, or the model's
pseudo-label on the pool is wrong: this script reads the pool's hidden labels, as a
diagnostic may), the norm of the step's gradient, and the validation accuracy. Usage (one
process per loss x weighting):

    python scripts/reweighting_diagnostics.py LOSS WEIGHTING SEED [config=PATH] [plot=PNG] \
        [key=value ...]
    e.g. python scripts/reweighting_diagnostics.py sce l2rw 0 label_noise=0.4 optim.lr=0.3 \
        optim.cosine=true
    python scripts/reweighting_diagnostics.py kd l2rw 0 config=configs/mnist1d_unlabeled.yaml \
        distill.mix=0.9 distill.temperature=4.0

LOSS is a composite point (ce, sce, ...), WEIGHTING `l2rw`, `trust` (meta_trust's own step),
`trust_aum` (meta_trust_aum's), `correct` (meta_correct's) or `uniform`; `plot=PNG` draws the
mean weight of each group over training (the picture of what the weighting learned, right
against wrong). The mean weight per group (labeled part, right pseudo-labels — and those the
model gives with a margin below / above the pool's median —, wrong ones), times the batch
size: 1 is uniform's. For `correct` the groups' mean share `c_i` of the loss moved to the
corrected label (0: the base point's loss, 1: all of it), and how often the corrected
label's top class is the true one, on wrong pseudo-labels and on right ones.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch
from torch import Tensor

from l2t.config import load_config, parts
from l2t.engine.lifetime import Lifetime, Observation, Step
from l2t.engine.student_state import SGDStep
from l2t.engine.task import Task
from l2t.engine.teaching import EpisodeResult, accuracy_of, run_student
from l2t.io.threads import configure
from l2t.losses.composite import parse_ranges
from l2t.methods.correction import Corrected
from l2t.methods.margins import BatchIndex
from l2t.methods.reweighting import BasePoint, Reweighted, l2rw_weights
from l2t.methods.trust import TrustWeighted

EVERY = 500


class Recorded(Reweighted):
    """L2RW (or uniform weights) on the composite's per-sample loss at the base point, on
    the one step function, recording each SGD step's weights and gradient norm."""

    def __init__(
        self, task: Task, weighting: str, seed: int, base: BasePoint, noisy: Tensor, truth: Tensor
    ):
        super().__init__(task, "l2rw", seed, base)
        self.task, self.weighting, self.noisy, self.truth = task, weighting, noisy, truth
        self.index = BatchIndex(task, seed)  # the batch's samples (batches are seeded)
        self.kept: list[float] = []
        self.effective: list[float] = []
        self.largest: list[float] = []
        self.noisy_share: list[float] = []
        self.norms: list[float] = []
        names = ("labeled", "right", "right_unsure", "right_sure", "wrong")
        self.by_group: dict[str, list[float]] = {name: [] for name in names}
        logits = task.splits.model_logits
        margin = torch.zeros(len(noisy))
        if logits is not None:
            top = logits.softmax(dim=1).topk(2, dim=1).values
            margin = top[:, 0] - top[:, 1]
        self.sure = margin > margin[task.splits.labeled :].median()
        self.labeled = task.splits.labeled
        history = weighting == "trust_aum"
        self.trust = (
            TrustWeighted(task, seed, base, history) if weighting.startswith("trust") else None
        )
        self.correct = Corrected(task, seed, base) if weighting == "correct" else None
        self.fixed: dict[str, list[float]] = {"wrong": [], "right": []}  # corrected label true
        self.curves: list[tuple[int, dict[str, float]]] = []  # (step, mean weight per group)

    def propose(
        self, theta: dict[str, Tensor], state: dict[str, Tensor], obs: Observation
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        self.index.start(obs)
        for inner in (self.trust, self.correct):
            if inner is not None:
                inner.index.start(obs)
        return super().propose(theta, state, obs)

    def objective(self, step: SGDStep) -> Tensor:
        logits = step.forward(step.params, step.x)
        losses = self.samplewise(logits, step.y)
        index = self.index.next().cpu()
        if self.trust is not None:  # meta_trust's step itself (l2t/methods/trust.py)
            loss = self.trust.objective(step)
            assert self.trust.last_weights is not None
            w = self.trust.last_weights / len(losses)  # its loss is (w * l).mean()
        elif self.correct is not None:  # meta_correct's step: its shares stand for weights
            loss = self.correct.objective(step)
            assert self.correct.last_share is not None and self.correct.last_label is not None
            w = self.correct.last_share / len(losses)
            truth = self.truth[index]
            for name, where in (("wrong", self.noisy[index]), ("right", ~self.noisy[index])):
                where = where & (index >= self.labeled)
                if where.any():
                    hit = self.correct.last_label.cpu()[where] == truth[where]
                    self.fixed[name].append(hit.float().mean().item())
        else:
            if self.weighting == "l2rw":
                args = (step.params, losses, step.lr, step.x_val, step.y_val)
                w = l2rw_weights(step.forward, *args).detach()
            else:
                w = torch.full_like(losses, 1 / len(losses))
            loss = (w * losses).sum()
        pool = index >= self.labeled
        right = pool & ~self.noisy[index]
        sure = self.sure[index]  # the model's margin above the pool's median
        groups = {
            "labeled": ~pool,
            "right": right,
            "right_unsure": right & ~sure,
            "right_sure": right & sure,
            "wrong": self.noisy[index],
        }
        for name, where in groups.items():
            if where.any():  # mean weight relative to uniform's 1 / B
                self.by_group[name].append((w[where].mean() * len(w)).item())
        grads = torch.autograd.grad(loss, step.params, retain_graph=True)
        self.kept.append((w > 0).float().mean().item())
        self.effective.append((1 / (w**2).sum().clamp_min(1e-12)).item())
        self.largest.append(w.max().item())
        self.noisy_share.append((w * self.noisy[index]).sum().item())
        self.norms.append(torch.cat([g.flatten() for g in grads]).norm().item())
        return loss


def main(argv: list[str]) -> None:
    loss, weighting, seed = argv[0], argv[1], int(argv[2])
    given = [a for a in argv[3:] if a.startswith("config=")]
    config = given[-1].removeprefix("config=") if given else "configs/mnist1d_mlp_composite.yaml"
    plots = [a.removeprefix("plot=") for a in argv[3:] if a.startswith("plot=")]
    rest = [a for a in argv[3:] if not a.startswith(("config=", "plot="))]
    cfg = load_config(config, ["loss.family=composite", f"loss.base={loss}", *rest])
    configure(1)
    splits = parts.splits(cfg)
    wrong = torch.zeros(len(splits.y_train), dtype=torch.bool)
    truth = splits.y_train.clone()  # the true labels: the pool's hidden ones where it has them
    if splits.noise is not None:
        wrong[torch.as_tensor(splits.noise.index)] = True
    elif splits.hidden_labels is not None:  # the model's pseudo-labels that are wrong
        wrong[splits.labeled :] = splits.y_train[splits.labeled :] != splits.hidden_labels
        truth[splits.labeled : splits.labeled + splits.pool] = splits.hidden_labels
    else:
        raise SystemExit("set label_noise=RATE or unlabeled=N: nothing here has a wrong label")
    task = parts.task(cfg, splits)
    assert task.composite is not None
    base = BasePoint(task.composite, parts.base_loss(cfg), parse_ranges(cfg.loss.ranges))
    policy = Recorded(task, weighting, seed, base, wrong, truth)

    def val_acc(life: Lifetime) -> float:
        return accuracy_of(task, life.student, splits.x_val, splits.y_val)

    def report(step: Step, before: Lifetime, so_far: EpisodeResult) -> None:
        done = step.life.student.step
        if done // EVERY == before.student.step // EVERY and done < task.steps:
            return
        mean = statistics.fmean
        print(
            f"{loss} {weighting} step {done}: "
            + (
                ""  # shares, not weights: how many are kept or how spread says nothing
                if policy.correct is not None
                else f"kept {mean(policy.kept):.2f} effective {mean(policy.effective):.1f} "
                f"largest {max(policy.largest):.3f} wrong share {mean(policy.noisy_share):.2f} "
            )
            + f"|grad| {mean(policy.norms):.2f} (max {max(policy.norms):.1f}) "
            + f"val {val_acc(step.life):.3f}; "
            + ("mean share c_i: " if policy.correct is not None else "mean weight x B: ")
            + " ".join(f"{k} {statistics.fmean(v):.2f}" for k, v in policy.by_group.items() if v)
            + "".join(
                f"; corrected label true on {k} pseudo-labels {statistics.fmean(v):.2f}"
                for k, v in policy.fixed.items()
                if v
            ),
            flush=True,
        )
        policy.curves.append(
            (done, {k: statistics.fmean(v) for k, v in policy.by_group.items() if v})
        )
        for values in (*policy.by_group.values(), *policy.fixed.values()):
            values.clear()
        for kept in (policy.kept, policy.effective, policy.largest, policy.noisy_share):
            kept.clear()
        policy.norms.clear()

    run_student(task, policy, {}, seed, EVERY, on_step=report)
    if plots:
        what = "shares c_i" if weighting == "correct" else "weights"
        title = f"{loss} point, {weighting} {what} (seed {seed})"
        draw(policy.curves, title, Path(plots[-1]), shares=weighting == "correct")


def draw(
    curves: list[tuple[int, dict[str, float]]], title: str, out: Path, shares: bool = False
) -> None:
    """The mean weight of each group of samples (x B: uniform is 1) over training, or with
    `shares` its mean share of the loss moved to the corrected label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for group in curves[0][1]:
        steps = [s for s, g in curves if group in g]
        ax.plot(steps, [g[group] for _, g in curves if group in g], label=group, marker=".")
    ax.axhline(1.0, color="gray", lw=0.8, ls="--")
    ylabel = (
        "mean share c_i (0: the base point)" if shares else "mean weight x batch size (uniform: 1)"
    )
    ax.set(xlabel="student step", ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"plot: {out}")


if __name__ == "__main__":
    main(sys.argv[1:])

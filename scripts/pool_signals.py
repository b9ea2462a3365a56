"""What tells a right pseudo-label from a wrong one (issue 33, RESULTS.md): for one student
trained at a composite point on the unlabeled pool, the area under the ROC curve of each
per-sample signal a teacher could read, for "the model's pseudo-label is right" — over the
whole pool and over its half where the model's margin is below the median (where the
model's confidence cannot help). Reads the pool's hidden labels, as a diagnostic may.

Signals: the model's top probability and margin (fixed: what `confident` and `slam` use);
the student's margin on the pseudo-label `z_y - max_{k != y} z_k` at a checkpoint; its mean
over the checkpoints so far (the area under the margin, Pleiss et al. 2020: a sample the
student fits only late, against what it learns from the rest, has a low one); the share of
checkpoints at which the student agrees with the pseudo-label; the share of the sample's 5
nearest labeled samples, in the student's representation, whose label is its pseudo-label
(`l2t/methods/neighbours.py`), and that share's rank added to the mean margin's (what
`aum_knn_drop` drops by). At the end, all of them at once:
a logistic regression over every signal, its AUC 5-fold cross-validated on the pool (does any
mix of them separate better than the best alone?). Last, where a correction could come from:
among the pool's lowest-ranked shares (mean margin + neighbours), how often the pseudo-label,
the student's prediction, its labeled neighbours' majority and the model + student average
name the true class.

    python scripts/pool_signals.py LOSS SEED [config=PATH] [key=value ...]
    e.g. python scripts/pool_signals.py kd 0 config=configs/mnist1d_unlabeled.yaml \
        distill.mix=0.9 distill.temperature=4.0 optim.lr=0.3
"""

from __future__ import annotations

import sys

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict
from torch import Tensor
from torch.func import functional_call

from agents.fixed_loss import FixedLossTeacher
from l2t.config import load_config, parts
from l2t.engine.lifetime import Lifetime, Step
from l2t.engine.teaching import EpisodeResult, run_student
from l2t.io.threads import configure
from l2t.methods.neighbours import margin_and_neighbours, neighbour_labels

EVERY = 250  # student steps between checkpoints


def margin_on(logits: Tensor, labels: Tensor) -> Tensor:
    """`z_y - max_{k != y} z_k` per sample."""
    own = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf")).max(dim=1).values
    return own - others


def auc(score: Tensor, right: Tensor) -> float:
    return float(roc_auc_score(right.numpy(), score.numpy()))


def main(argv: list[str]) -> None:
    loss, seed = argv[0], int(argv[1])
    given = [a for a in argv[2:] if a.startswith("config=")]
    config = given[-1].removeprefix("config=") if given else "configs/mnist1d_unlabeled.yaml"
    rest = [a for a in argv[2:] if not a.startswith("config=")]
    cfg = load_config(config, ["loss.family=composite", f"loss.base={loss}", *rest])
    configure(1)
    splits = parts.splits(cfg)
    if splits.hidden_labels is None or splits.model_logits is None:
        raise SystemExit("set unlabeled=N and distill.model=PATH: there is no pool to read")
    task = parts.task(cfg, splits)
    first = splits.labeled
    x, pseudo = splits.x_train[first:], splits.y_train[first:]
    right = pseudo == splits.hidden_labels
    model = splits.model_logits[first:]
    top = model.softmax(dim=1).topk(2, dim=1).values
    unsure = (top[:, 0] - top[:, 1]) < (top[:, 0] - top[:, 1]).median()
    fixed = {"model top p": top[:, 0], "model margin": top[:, 0] - top[:, 1]}
    print(
        f"pool {len(pseudo)}: pseudo-labels right {right.float().mean():.3f}; "
        f"in the low-margin half {right[unsure].float().mean():.3f}"
    )
    margins: list[Tensor] = []
    last: dict[str, Tensor] = {}
    views: dict[str, Tensor] = {}  # the last checkpoint's student logits and neighbours

    def checkpoint(step: Step, before: Lifetime, so_far: EpisodeResult) -> None:
        done = step.life.student.step
        if done // EVERY == before.student.step // EVERY and done < task.steps:
            return
        student = step.life.student
        with torch.no_grad():
            logits = functional_call(task.model, {**student.params, **student.buffers}, (x,))
        margins.append(margin_on(logits, pseudo))
        stacked = torch.stack(margins)
        neighbours = neighbour_labels(task, student)
        agreement = (neighbours == pseudo[:, None]).float().mean(dim=1)
        views.update(student=logits, neighbours=neighbours)
        mean_margin = stacked.mean(dim=0)
        signals = {
            **fixed,
            "student margin now": margins[-1],
            "student mean margin": mean_margin,
            "student agreement share": (stacked > 0).float().mean(dim=0),
            "labeled neighbours' agreement": agreement,
            "mean margin + neighbours (ranks)": margin_and_neighbours(mean_margin, agreement),
        }
        last.update(signals)
        print(
            f"step {done}: AUC all / low-margin half: "
            + "; ".join(
                f"{name} {auc(s, right):.3f} / {auc(s[unsure], right[unsure]):.3f}"
                for name, s in signals.items()
            ),
            flush=True,
        )

    fixed_loss = FixedLossTeacher("base", [p.to(task.device) for p in parts.base_loss(cfg)])
    result = run_student(task, fixed_loss, {}, seed, cfg.steps, on_step=checkpoint)
    print(f"student: val {result.val_acc:.4f}")
    features = torch.stack(list(last.values()), dim=1).numpy()
    regression = LogisticRegression(max_iter=1000)
    fitted = cross_val_predict(regression, features, right.numpy(), cv=5, method="predict_proba")
    combined = torch.from_numpy(fitted[:, 1])
    print(
        "every signal at once (logistic regression, 5-fold cross-validated): AUC all / "
        f"low-margin half {auc(combined, right):.3f} / {auc(combined[unsure], right[unsure]):.3f}"
    )
    truth = splits.hidden_labels
    named = {
        "pseudo-label": pseudo,
        "student": views["student"].argmax(dim=1),
        "neighbours' majority": views["neighbours"].mode(dim=1).values,
        "model + student average": (model.softmax(dim=1) + views["student"].softmax(dim=1)).argmax(
            1
        ),
    }
    order = last["mean margin + neighbours (ranks)"].argsort()
    for share in (0.15, 0.3, 1.0):
        low = order[: round(share * len(order))]
        print(
            f"lowest {share:.0%} by mean margin + neighbours, the true class named by: "
            + "; ".join(
                f"{n} {(c[low] == truth[low]).float().mean():.1%}" for n, c in named.items()
            )
        )


if __name__ == "__main__":
    main(sys.argv[1:])

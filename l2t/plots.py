"""The run directory's pictures: students' accuracy curves and the learned loss."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from torch import Tensor

from l2t.loss_network import loss_surface
from l2t.schedule import Schedule


def plot_curves(metrics_path: Path, out: Path) -> Path:
    """Validation accuracy of every meta-training student, and the final teacher-vs-CE pair."""
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    episodes = [r for r in records if r.get("phase") == "episode"]
    for i, r in enumerate(episodes):
        steps = [p["step"] for p in r["curve"]]
        alpha = 0.25 + 0.5 * (i + 1) / len(episodes)
        ax.plot(steps, [p["val_acc"] for p in r["curve"]], color="tab:blue", alpha=alpha, lw=1)
    final = [r for r in records if r.get("phase") == "final"]
    if final:
        f = final[-1]
        for key, label, color in (("teacher_curve", "teacher", "tab:red"), ("ce_curve", "CE", "k")):
            steps = [p["step"] for p in f[key]]
            ax.plot(
                steps,
                [p["test_acc"] for p in f[key]],
                color=color,
                lw=2,
                label=f"{label} (test, final {f[key][-1]['test_acc']:.3f})",
            )
    ax.plot([], [], color="tab:blue", label="meta-training students (val)")
    ax.set_xlabel("student step")
    ax.set_ylabel("accuracy")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_learned_loss(schedule: Schedule, base_phi: Sequence[Tensor], out: Path) -> Path:
    """Top: pair loss over (p_target, p_other) for the base loss and at points of the
    schedule. Bottom: the teacher's change to the base loss there (what it learned)."""
    points = [0.0, 1 / 3, 2 / 3, 1.0]
    base = loss_surface(base_phi)
    surfaces = [("base loss", base)]
    surfaces += [(f"{p:.0%} of training", loss_surface(schedule.phi_at(p))) for p in points]
    fig, axes = plt.subplots(2, len(surfaces), figsize=(3.0 * len(surfaces), 6.0), squeeze=False)
    lo = min(float(s.min()) for _, s in surfaces)
    hi = max(float(s.max()) for _, s in surfaces)
    change = max(float((s - base).abs().max()) for _, s in surfaces) or 1.0
    extent = (0.0, 1.0, 0.0, 1.0)
    for col, (title, surface) in enumerate(surfaces):
        top = axes[0, col].imshow(surface.numpy(), origin="lower", extent=extent, vmin=lo, vmax=hi)
        axes[0, col].set_title(title, fontsize=9)
        bottom = axes[1, col].imshow(
            (surface - base).numpy(),
            origin="lower",
            extent=extent,
            vmin=-change,
            vmax=change,
            cmap="RdBu_r",
        )
        axes[1, col].set_xlabel("p_other")
    axes[0, 0].set_ylabel("p_target")
    axes[1, 0].set_ylabel("p_target")
    fig.colorbar(top, ax=list(axes[0]), shrink=0.8, label="pair loss")
    fig.colorbar(bottom, ax=list(axes[1]), shrink=0.8, label="change vs base loss")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out

"""The run directory's pictures: students' accuracy curves and the learned loss."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from torch import Tensor

from l2t.engine.schedule import Schedule
from l2t.losses.composite import CONTROLS
from l2t.losses.dln import dln_loss, gradient_scale, loss_surface
from l2t.losses.families import FAMILIES
from l2t.losses.fixed import cross_entropy, generalized_ce, soft_bootstrap, symmetric_ce
from l2t.losses.parametric import TERMS

matplotlib.use("Agg")  # files only, never a window; before pyplot is imported
import matplotlib.pyplot as plt

Curve = list[dict[str, float]]  # points {"step", "val_acc", "test_acc"}


def plot_curves(
    groups: dict[str, list[Curve]],
    out: Path,
    metric: str = "test_acc",
    background: list[Curve] | None = None,
) -> Path:
    """Accuracy against student step: the mean of each group (a band of ±1 std over seeds
    where a group has several students), over faint meta-training students if given. Two
    panels: the whole of training, and its second half with the y axis fitted to the
    curves there, where the points that separate methods are (a whole-range axis shows
    the climb from chance and hides them)."""
    fig, (whole, late) = plt.subplots(
        1, 2, figsize=(10, 4.5), width_ratios=(1, 1.3), layout="constrained"
    )
    for i, curve in enumerate(background or []):
        alpha = 0.15 + 0.45 * (i + 1) / len(background or [1])
        for ax in (whole, late):
            ax.plot(
                [p["step"] for p in curve],
                [p["val_acc"] for p in curve],
                color="tab:blue",
                alpha=alpha,
                lw=0.8,
                label="meta-training students (val)" if i == 0 and ax is whole else None,
            )
    merged: dict[str, list[Curve]] = {}  # methods with the same students share one line
    for name, curves in groups.items():
        same = next((m for m, c in merged.items() if c == curves), None)
        if same is None:
            merged[name] = curves
        else:
            merged[f"{same} = {name}"] = merged.pop(same)
    styles = ("-", "--", "-.", ":")
    last = max(p["step"] for curves in merged.values() for p in curves[0])
    low, high = np.inf, -np.inf  # the curves' range over the second half
    for i, (name, curves) in enumerate(merged.items()):
        steps = np.array([p["step"] for p in curves[0]])
        values = np.array([[p[metric] for p in c] for c in curves])
        mean, std = values.mean(axis=0), values.std(axis=0)
        style = styles[(i // 10) % len(styles)]  # past ten colours, another line style
        same = ", the same students" if " = " in name else ""  # e.g. ce = ce_early_stop
        label = f"{name} (final {mean[-1]:.3f}{same})"
        (line,) = whole.plot(steps, mean, lw=2, ls=style, label=label)
        late.plot(steps, mean, lw=2, ls=style, color=line.get_color())
        if len(curves) > 1:
            for ax in (whole, late):
                ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.15)
        half = steps >= last / 2
        low, high = min(low, (mean - std)[half].min()), max(high, (mean + std)[half].max())
    split = "test" if metric == "test_acc" else "validation"
    seeds = max(len(curves) for curves in merged.values())
    title = f"Students' {split} accuracy"
    if seeds > 1:
        title += f", mean ± std over {seeds} seeds"
    if background:
        title += " (faint: meta-training students, validation split)"
    fig.suptitle(title, fontsize=10)
    whole.set(xlabel="student step", ylabel=f"accuracy ({split} split)", title="whole training")
    late.set(xlabel="student step", title="second half, zoomed")
    pad = max(0.1 * (high - low), 0.002)
    late.set_xlim(last / 2, last)
    late.set_ylim(low - pad, high + pad)
    if len(merged) > 4:  # many methods: the legend under the axes, not over the curves
        fig.set_size_inches(10, 4.5 + 0.12 * len(merged))
        fig.legend(loc="outside lower center", fontsize=8, ncols=2)
    else:
        whole.legend(loc="lower right", fontsize=8)
    for ax in (whole, late):
        ax.grid(alpha=0.3)
    return _written(fig, out)


def plot_differences(
    rows: list[tuple[str, float, float]], reference: str, seeds: int, out: Path
) -> Path:
    """Each method's mean paired difference to `reference` (pt) with its 95% interval
    (`half` NaN: no interval), best first: what the table's last columns say, at a glance."""
    rows = sorted(rows, key=lambda r: r[1])
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.35 * len(rows)))
    for i, (_, mean, half) in enumerate(rows):
        above = not np.isnan(half) and mean - half > 0
        below = not np.isnan(half) and mean + half < 0
        color = "tab:green" if above else "tab:red" if below else "tab:gray"
        err = None if np.isnan(half) else [[half * 100], [half * 100]]
        ax.errorbar(mean * 100, i, xerr=err, fmt="o", color=color, capsize=3)
    ax.axvline(0.0, color="black", lw=1)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.set_xlabel(f"test accuracy minus {reference}'s, paired (pt; 95% interval)")
    ax.set_title(f"Against the best baseline, {reference} ({seeds} paired seeds)", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    return _written(fig, out)


def plot_learned_loss(schedule: Schedule, base_phi: Sequence[Tensor], out: Path) -> Path:
    """Top: pair loss over (p_target, p_other) for the base loss and at points of the
    schedule. Bottom: the teacher's change to the base loss there (what it learned)."""
    points = [0.0, 1 / 3, 2 / 3, 1.0]
    base = loss_surface(base_phi)
    changes = [(f"{p:.0%} of training", loss_surface(schedule.phi_at(p)) - base) for p in points]
    fig, axes = plt.subplots(
        1, 1 + len(changes), figsize=(3.0 * (1 + len(changes)) + 1.6, 3.6), layout="constrained"
    )
    fig.suptitle("The base pair loss over (p_target, p_other), then what the teacher changed in it")
    extent = (0.0, 1.0, 0.0, 1.0)
    left = axes[0].imshow(base.numpy(), origin="lower", extent=extent)
    axes[0].set_title("base loss", fontsize=9)
    change = max(float(c.abs().max()) for _, c in changes) or 1.0
    for ax, (title, delta) in zip(axes[1:], changes):
        right = ax.imshow(
            delta.numpy(), origin="lower", extent=extent, vmin=-change, vmax=change, cmap="RdBu_r"
        )
        ax.set_title(f"change, {title}", fontsize=9)
    for ax in axes:
        ax.set_xlabel("p_other = s(z_j)")
        ax.set_xticks([0, 0.5, 1], ["0", "0.5", "1"])
        ax.set_yticks([0, 0.5, 1], ["0", "0.5", "1"])
    axes[0].set_ylabel("p_target = s(z_y)")
    fig.colorbar(left, ax=axes[0], shrink=0.8, label="pair loss")
    fig.colorbar(right, ax=list(axes[1:]), shrink=0.8, label="learned minus base")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_coefficients(schedule: Schedule, out: Path) -> Path:
    """The parametric family's coefficients against training progress."""
    values = np.stack([p.numpy() for p in schedule.phi])
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, term in enumerate(TERMS):
        ax.step(schedule.progress, values[:, i], where="post", label=term)
    ax.set_xlabel("training progress")
    ax.set_ylabel("coefficient")
    return _save(fig, ax, out)


def plot_controls(schedule: Schedule, out: Path) -> Path:
    """The composite family's controls against training progress (those not 0 throughout;
    the loss scale as its factor exp(s))."""
    values = np.stack([p[: len(CONTROLS)].numpy() for p in schedule.phi])
    values[:, 0] = np.exp(values[:, 0])
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, name in enumerate(CONTROLS):
        if np.any(values[:, i] != 0):
            label = "loss scale exp(s)" if name == "log_scale" else name
            ax.step(schedule.progress, values[:, i], where="post", label=label)
    ax.set_xlabel("training progress")
    ax.set_ylabel("control value")
    ax.set_title("The composite loss's controls as the teacher set them", fontsize=10)
    return _save(fig, ax, out)


def plot_loss_scale(schedules: dict[str, Schedule], base_phi: Sequence[Tensor], out: Path) -> Path:
    """How strongly each learned loss pushes the logits, relative to the base loss, over
    training: a loss scale acts as a learning rate (docs/design.md §4), and it is the first
    thing a short-horizon teacher changes."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, schedule in schedules.items():
        ratios = [gradient_scale(phi, base_phi) for phi in schedule.phi_sets()]
        label = f"{name} (final {ratios[-1]:.3f}x)"
        ax.step(schedule.progress, ratios, where="post", label=label)
    ax.axhline(1.0, color="black", lw=1, ls="--", label="base loss")
    ax.set_xlabel("training progress (fraction of the student's budget)")
    ax.set_ylabel("|d loss / d logits|, ratio to base")
    ax.set_title("Gradient scale of the learned loss over training", fontsize=10)
    return _save(fig, ax, out)


def plot_mix(schedule: Schedule, base_phi: Sequence[Tensor], out: Path) -> Path:
    """The weight of the model's soft labels against the one-hot label over training, as
    the teacher set it (docs/design.md §6): where distillation helps and where it stops."""
    mixes = [float(phi[-1]) for phi in schedule.phi_sets()]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.step(schedule.progress, mixes, where="post", label=f"learned (final {mixes[-1]:.3f})")
    ax.axhline(float(base_phi[-1]), color="black", lw=1, ls="--", label="distill.mix (start)")
    ax.set_ylim(0, 1)
    ax.set_xlabel("training progress (fraction of the student's budget)")
    ax.set_ylabel("mix: weight of the soft labels")
    ax.set_title("Soft labels against the one-hot label over training", fontsize=10)
    return _save(fig, ax, out)


def label_pull(loss: Any, classes: int = 10, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """How hard a loss pulls a sample towards its given label, against the model's
    probability of that label: `-dL/dz_y` per sample, for samples whose label logit sweeps
    from confidently wrong to confidently right (the other logits one fixed N(0, 1.5^2)
    draw). Under label noise the confidently wrong samples are mostly the mislabelled ones:
    cross-entropy pulls them hardest, noise-robust losses hardly at all."""
    generator = torch.Generator().manual_seed(0)
    others = 1.5 * torch.randn(classes, generator=generator)
    logits = others.repeat(points, 1)
    logits[:, 0] = torch.linspace(-8.0, 8.0, points)
    logits.requires_grad_()
    targets = torch.zeros(points, dtype=torch.long)
    (grad,) = torch.autograd.grad(loss(logits, targets) * points, logits)  # per-sample terms
    p_label = logits.detach().softmax(dim=1)[:, 0]
    return p_label.numpy(), -grad[:, 0].numpy()


FIXED_STYLES = {  # the fixed losses thin and each its own dash, under the learned ones
    "cross-entropy": {"ls": "-", "lw": 1.0, "color": "black"},
    "bootstrapping": {"ls": ":", "lw": 2.0, "color": "tab:red"},
    "GCE": {"ls": "--", "lw": 1.2, "color": "tab:orange"},
    "SCE": {"ls": "-.", "lw": 1.2, "color": "tab:green"},
}


def plot_label_pull(losses: dict[str, Any], out: Path, label_noise: float = 0.0) -> Path:
    """`label_pull` of each loss, as it is (the scale acts as a learning rate) and relative
    to its own maximum (the shape: which samples it gives up on). A learned curve on an
    earlier one (mean distance within 2% of its maximum) is not drawn; the title says so."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    drawn: dict[str, np.ndarray] = {}
    learned_colors = iter(["tab:blue", "tab:purple", "tab:brown", "tab:gray", "tab:pink"])
    for name, loss in losses.items():
        p, pull = label_pull(loss)
        if name not in FIXED_STYLES:  # the base and learned losses: one line where they agree
            same = next(
                (
                    k
                    for k, v in drawn.items()
                    if k not in FIXED_STYLES and np.abs(v - pull).mean() <= 0.02 * np.abs(v).max()
                ),
                None,
            )
            if same is not None:
                continue
        drawn[name] = pull
        if name in FIXED_STYLES:
            style = FIXED_STYLES[name]
        else:
            style = {"ls": "-", "lw": 2.2, "color": next(learned_colors)}
        axes[0].plot(p, pull, label=name, **style)
        axes[1].plot(p, pull / max(pull.max(), 1e-12), **style)
    titles = ("pull towards the given label", "the same, relative to each loss's maximum")
    for ax, title, label in zip(axes, titles, ("-dL/dz_y", "-dL/dz_y / max")):
        ax.set_xscale("log")
        ax.set_xlabel("model's probability of the sample's given label")
        ax.set_ylabel(label)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    hidden = [n for n in losses if n not in drawn]
    axes[0].legend(fontsize=8)
    if label_noise:
        heading = (
            f"With {label_noise:.0%} of the labels wrong, the confidently wrong samples (left) "
            "are mostly the mislabelled ones"
        )
    else:
        heading = "How hard each loss pulls a sample towards its given label"
    if hidden:
        heading += f"\nnot drawn, within 2% of the line before them: {'; '.join(hidden)}"
    fig.suptitle(heading, fontsize=11)
    return _written(fig, out)


def _save(fig: Any, ax: Any, out: Path) -> Path:
    """Legend, grid, tight layout, one file; the figure is closed."""
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _written(fig, out)


def _written(fig: Any, out: Path) -> Path:
    """The figure laid out tightly (unless it lays itself out) into one file, then closed."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_schedule(
    schedule: Schedule,
    base_phi: Sequence[Tensor],
    family: str,
    plots: Path,
    label_noise: float = 0.0,
) -> list[Path]:
    """The learned loss of a schedule, drawn as its family allows."""
    drawn_as = FAMILIES[family].drawn_as
    if drawn_as == "coefficients":
        return [plot_coefficients(schedule, plots / "loss_coefficients.png")]
    if drawn_as == "controls":
        return [plot_controls(schedule, plots / "controls.png")]
    drawn = [
        plot_learned_loss(schedule, base_phi, plots / "learned_loss.png"),
        plot_loss_scale({"learned loss": schedule}, base_phi, plots / "loss_scale.png"),
        plot_label_pull(
            label_pull_losses(schedule, base_phi), plots / "label_pull.png", label_noise
        ),
    ]
    if base_phi[-1].ndim == 0:  # the teacher set the soft labels' mix
        drawn.append(plot_mix(schedule, base_phi, plots / "distill_mix.png"))
    return drawn


def label_pull_losses(schedule: Schedule, base_phi: Sequence[Tensor]) -> dict[str, Any]:
    """The fixed losses and the learned one at the start, middle and end of training."""

    def dln(phi: Sequence[Tensor]) -> Any:
        weights = [w.detach().cpu() for w in phi]
        return lambda z, y: dln_loss(weights, z, y)

    losses: dict[str, Any] = {
        "cross-entropy": cross_entropy,
        "GCE": generalized_ce,
        "SCE": symmetric_ce,
        "bootstrapping": soft_bootstrap,
        "base loss": dln(base_phi),
    }
    for point in (0.0, 0.5, 1.0):
        losses[f"learned, {point:.0%} of training"] = dln(schedule.phi_at(point))
    return losses

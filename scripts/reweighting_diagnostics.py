"""Why Learning-to-Reweight helps on cross-entropy and hurts on SCE (RESULTS.md, 40% noise).

Trains one student per (loss, weighting) at the run's settings and prints, every 500
steps: the fraction of samples L2RW keeps (weight > 0), the share of the batch's weight on
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
from torch.func import functional_call

from l2t.config import load_config
from l2t.data.datasets import load_splits
from l2t.engine.student_state import StudentState, sgd_update
from l2t.engine.task import Task
from l2t.engine.teaching import accuracy_of
from l2t.io.threads import configure
from l2t.losses.base_loss import base_loss_params
from l2t.methods.reweighting import l2rw_weights

EVERY = 500


def main(argv: list[str]) -> None:
    loss, weighting, seed = argv[0], argv[1], int(argv[2])
    overrides = ["loss.family=composite", f"loss.base={loss}", *argv[3:]]
    cfg = load_config("configs/mnist1d_mlp_composite.yaml", overrides)
    configure(1)
    splits = load_splits(cfg)
    if splits.noise is None:
        raise SystemExit("set label_noise=RATE: the diagnostics measure weight on noisy labels")
    task = Task.from_config(cfg, splits)
    assert task.composite is not None
    per_sample = task.composite.samplewise(base_loss_params(cfg))
    noisy = torch.zeros(len(splits.y_train), dtype=torch.bool)
    noisy[torch.as_tensor(splits.noise.index)] = True
    state = task.init(seed)
    names, buffers = list(state.params), dict(state.buffers)
    params = [p.clone() for p in state.params.values()]
    momentum: list[torch.Tensor | None] = [None] * len(params)

    def call(weights: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(task.model, {**dict(zip(names, weights)), **buffers}, (x,))

    kept, noisy_share, norms = [], [], []
    for step in range(task.steps):
        t, i = divmod(step, task.k)
        batches, sgd = task.batches(seed, t), task.sgd_at(t * task.k)
        live = [p.detach().requires_grad_() for p in params]
        losses = per_sample(call(live, batches.x[i]), batches.y[i])
        if weighting == "l2rw":
            w = l2rw_weights(call, live, losses, sgd.lr, batches.x_val, batches.y_val)
        else:
            w = torch.full_like(losses, 1 / len(losses))
        grads = torch.autograd.grad((w.detach() * losses).sum(), live)
        kept.append((w > 0).float().mean().item())
        noisy_share.append((w * noisy[task.train_indices(seed, t)[i]]).sum().item())
        norms.append(torch.sqrt(sum((g**2).sum() for g in grads)).item())
        with torch.no_grad():
            for j, (p, g) in enumerate(zip(live, grads)):
                params[j], momentum[j] = sgd_update(p.detach(), g, momentum[j], sgd)
        if (step + 1) % EVERY == 0:
            zero = params[0].new_zeros(())
            now = StudentState(dict(zip(names, params)), buffers, {}, step + 1, zero, zero, zero)
            acc = accuracy_of(task, now, splits.x_val, splits.y_val)
            print(
                f"{loss} {weighting} step {step + 1}: kept {statistics.fmean(kept):.2f} "
                f"noisy share {statistics.fmean(noisy_share):.2f} "
                f"|grad| {statistics.fmean(norms):.2f} val {acc:.3f}",
                flush=True,
            )
            kept, noisy_share, norms = [], [], []


if __name__ == "__main__":
    main(sys.argv[1:])

"""How good the meta-gradient is for each validation batch size (BENCHMARKS.md, issue 10).

A teacher step's meta-gradient is dL_val/dphi after a K-step unroll, with L_val over
`val_batch` validation samples drawn per teacher step. For students along a lifetime under
the base loss, this compares it, for several sizes, with the gradient over the whole
validation split: the mean cosine similarity over draws, and the time of the
unroll + validation + meta-gradient. Usage:

    python scripts/val_batch_quality.py [key=value ...]
"""

from __future__ import annotations

import sys
import time

import torch

from l2t.config import load_config, parts
from l2t.engine.student_state import validate
from l2t.io.threads import configure

SIZES = (50, 100, 200, 500)
DRAWS = 8


def main(argv: list[str]) -> None:
    cfg = load_config(None, argv)
    configure(cfg.threads)
    torch.manual_seed(cfg.seed)
    splits = parts.splits(cfg, torch.device("cpu"))
    task = parts.task(cfg, splits)
    phi = [p.detach().requires_grad_() for p in parts.base_loss(cfg)]
    base = task.loss_fn([p.detach() for p in phi])
    n_val = len(splits.y_val)
    cosines: dict[int, list[float]] = {b: [] for b in SIZES}
    seconds: dict[int, list[float]] = {b: [] for b in (*SIZES, n_val)}
    generator = torch.Generator().manual_seed(cfg.seed)
    student = task.init(cfg.seed)
    for t in range(task.teacher_steps):
        batches = task.batches(cfg.seed, t)
        if t % (task.teacher_steps // 5) == 0:  # five points along the lifetime
            grads = {}
            for b in (n_val, *SIZES):
                for _ in range(DRAWS if b < n_val else 1):
                    idx = torch.randperm(n_val, generator=generator)[:b]
                    start = time.perf_counter()
                    end = task.train(student, task.loss_fn(phi), batches, create_graph=True)
                    val_loss, _ = validate(task.model, end, splits.x_val[idx], splits.y_val[idx])
                    g = torch.cat([x.flatten() for x in torch.autograd.grad(val_loss, phi)])
                    seconds[b].append(time.perf_counter() - start)
                    if b == n_val:
                        grads[b] = g
                    else:
                        cosines[b].append(torch.cosine_similarity(g, grads[n_val], dim=0).item())
        student = task.train(student, base, batches)
    print(
        f"{cfg.dataset} {cfg.student}, K={cfg.unroll.steps}, {n_val} validation samples, "
        f"{DRAWS} draws at 5 points of a lifetime, {torch.get_num_threads()} thread(s)"
    )
    print("| val_batch | cosine with the whole split: mean | min | ms per teacher step |")
    print("|---|---|---|---|")
    for b in (*SIZES, n_val):
        ms = 1000 * sum(seconds[b]) / len(seconds[b])
        if b == n_val:
            print(f"| {b} (whole split) | 1 | 1 | {ms:.1f} |")
        else:
            c = cosines[b]
            print(f"| {b} | {sum(c) / len(c):.3f} | {min(c):.3f} | {ms:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1:])

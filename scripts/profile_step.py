"""Where the time of one fused online teacher step goes (BENCHMARKS.md, issue 10).

Profiles `steps` teacher steps of the LSTM teacher learning while it teaches (update=fused,
`l2t bench`'s "online learning, fused": `lifetime.advance` differentiably, then the
backward to the teacher and its Adam step) with torch.profiler, the
pieces marked by wrapping them in `record_function`: the teacher's forward, the student's
forward, the DLN loss's forward, the unroll (its rest is the students' backward with
create_graph and the SGD arithmetic), the validation pass, and the meta-gradient (the
second-order backward through the unroll). Usage:

    python scripts/profile_step.py [key=value ...]        # e.g. dataset=digits student=resnet8
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

import l2t.engine.lifetime as lifetime_module
import l2t.engine.task as task_module
from agents import LSTMTeacher
from l2t.config import load_config, parts
from l2t.engine.lifetime import Lifetime, advance, start
from l2t.io.device import resolve_device
from l2t.io.threads import configure

RANGES = {
    "teacher": "teacher (LSTM) forward",
    "student": "student forward (training and validation)",
    "dln": "DLN loss forward",
    "unroll": "unroll (K steps, inclusive)",
    "validate": "validation pass (inclusive)",
    "functional_step": "lifetime advance (inclusive)",
    "step": "teacher step (inclusive)",
}


def marked(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with record_function(name):
            return fn(*args, **kwargs)

    return wrapper


def main(argv: list[str]) -> None:
    cfg = load_config(None, argv)
    configure(cfg.threads)
    torch.manual_seed(cfg.seed)
    task = parts.task(cfg, parts.splits(cfg, resolve_device(cfg.device)))
    teacher = LSTMTeacher.around(parts.base_loss(cfg), update="fused")
    teacher.forward = marked(RANGES["teacher"], teacher.forward)  # type: ignore[method-assign]
    model = task.model
    model.forward = marked(RANGES["student"], model.forward)  # type: ignore[method-assign]
    task_module.dln_loss = marked(RANGES["dln"], task_module.dln_loss)
    lifetime_module.unroll = marked(RANGES["unroll"], lifetime_module.unroll)
    lifetime_module.validate = marked(RANGES["validate"], lifetime_module.validate)
    theta = dict(teacher.named_parameters())
    life = start(task, teacher, cfg.seed)

    def teacher_step(life: Lifetime) -> Lifetime:
        if life.done(task):
            life = start(task, teacher, cfg.seed)
        with record_function(RANGES["functional_step"]):
            step = advance(task, teacher, theta, life, differentiable=True)
        step.val_loss.backward()
        teacher.optimizer.step()
        teacher.optimizer.zero_grad(set_to_none=True)
        return step.life.detach()

    for _ in range(5):  # warm
        life = teacher_step(life)
    steps = 20
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        begin = time.perf_counter()
        for _ in range(steps):
            with record_function(RANGES["step"]):
                life = teacher_step(life)
        wall = (time.perf_counter() - begin) * 1000 / steps
    events = prof.key_averages()
    total = {e.key: e.cpu_time_total / 1000 / steps for e in events}
    ops = sum(e.self_cpu_time_total for e in events if e.key.startswith("aten::")) / 1000 / steps
    t = {k: total.get(v, 0.0) for k, v in RANGES.items()}
    train_forward = t["student"] - t["validate"]  # the validation pass is a student forward
    pieces = {
        "teacher (LSTM) forward": t["teacher"],
        "student forward, K training steps": train_forward,
        "DLN loss forward, K steps": t["dln"],
        "student + DLN backward (create_graph) and SGD, K steps": t["unroll"]
        - train_forward
        - t["dln"],
        "validation pass": t["validate"],
        "meta-gradient: second-order backward through the unroll": t["step"]
        - t["functional_step"]
        - t["teacher"],
        "rest of the teacher step (features, checks)": t["functional_step"]
        - t["unroll"]
        - t["validate"],
    }
    print(
        f"{cfg.dataset} {cfg.student}, K={cfg.unroll.steps}, batch {cfg.optim.batch_size}, "
        f"val_batch {cfg.val_batch}, {torch.get_num_threads()} thread(s): "
        f"{wall:.2f} ms per teacher step ({wall / task.k:.3f} ms per student step), "
        f"profiled {t['step']:.2f} ms"
    )
    print("| piece | ms per teacher step | share |")
    print("|---|---|---|")
    for name, ms in pieces.items():
        print(f"| {name} | {ms:.2f} | {ms / t['step']:.0%} |")
    print(
        f"| (of all: time outside torch operators — Python, dispatch) | "
        f"{t['step'] - ops:.2f} | {(t['step'] - ops) / t['step']:.0%} |"
    )


if __name__ == "__main__":
    main(sys.argv[1:])

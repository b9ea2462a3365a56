"""`l2t bench`: cost per student step of each way to train a student, relative to a plain
cross-entropy step, and the memory an unroll keeps for the meta-gradient as K grows.

Figures go to BENCHMARKS.md by hand, with the command, the machine and the date.
"""

from __future__ import annotations

import copy
import functools
import platform
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from l2t import threads
from l2t.config import Config, from_dict
from l2t.loss_network import dln_loss


def _time_per_student_step(env: object, step: Callable[[], object], budget_s: float) -> float:
    """Median-free but warm: one warm-up episode slice, then as many steps as fit in budget."""
    from envs.student_training import StudentTrainingEnv

    assert isinstance(env, StudentTrainingEnv)
    env.reset(seed=0)
    for _ in range(3):
        step()
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < budget_s:
        if env.done:
            env.reset(seed=0)
        before = env.t
        step()
        steps += env.t - before
    return (time.perf_counter() - start) / steps * 1000.0


def saved_tensor_bytes(cfg: Config, k: int) -> int:
    """Bytes autograd saves for the meta-gradient of one K-step unroll (CPU-measurable)."""
    from envs.student_training import StudentTrainingEnv

    env = StudentTrainingEnv(
        from_dict({"unroll": {"steps": k}, "steps": max(k, cfg.steps)}, copy.deepcopy(cfg))
    )
    env.reset(seed=0)
    assert env.student is not None
    phi = [p.clone().requires_grad_() for p in env.base_phi]
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        env.functional_step(phi, commit_result=False)
    return total


ESTIMATOR_BENCH = {  # name: (estimator, observe, population or students, horizon)
    "estimator greedy (observe g)": ("greedy", "grad", 1, 1),
    "estimator tbptt, T=5 (observe g)": ("tbptt", "grad", 1, 5),
    "estimator pes, T=5 (observe g)": ("pes", "grad", 1, 5),
    "estimator pes, T=5 (observe state)": ("pes", "state", 1, 5),
}


def estimator_rows(cfg: Config, env: object, budget_s: float) -> dict[str, float]:
    """Milliseconds per student step advanced by each estimator, everything included
    (teacher, validation, second-order passes); es costs what pes does per step."""
    from l2t.task import Task
    from l2t.training import make_estimator, make_teacher

    rows = {}
    for name, (estimator, observe, members, horizon) in ESTIMATOR_BENCH.items():
        changes = {"estimator": estimator, "observe": observe, "horizon": horizon}
        changes["population" if estimator in ("pes", "es") else "students"] = members
        run_cfg = from_dict({"teacher": changes}, copy.deepcopy(cfg))
        teacher = make_teacher(run_cfg, env)
        task = Task.from_config(run_cfg, env.splits)  # type: ignore[attr-defined]
        est = make_estimator(run_cfg, task, teacher)
        per_update = members * horizon * task.k * (2 if estimator in ("pes", "es") else 1)
        est.estimate(teacher.theta())  # warm, and the population started
        start, updates = time.perf_counter(), 0
        while time.perf_counter() - start < budget_s:
            est.estimate(teacher.theta())
            updates += 1
        rows[name] = (time.perf_counter() - start) / (updates * per_update) * 1000.0
    return rows


def run_bench(cfg: Config, budget_s: float = 3.0) -> dict[str, float]:
    from agents import LSTMTeacher
    from envs.student_training import StudentTrainingEnv, base_loss_params

    threads.configure(cfg.threads)
    torch.manual_seed(cfg.seed)
    env = StudentTrainingEnv(cfg, base_phi=base_loss_params(cfg))
    phi = env.base_phi
    rows: dict[str, float] = {}
    rows["plain CE step"] = _time_per_student_step(
        env, lambda: env.train_with(F.cross_entropy), budget_s
    )
    rows["schedule replay (fixed DLN)"] = _time_per_student_step(
        env, lambda: env.train_with(lambda z, y: dln_loss(phi, z, y)), budget_s
    )
    for backend in ("higher", "func"):
        for update in ("fused", "three_stage"):
            bench_env = StudentTrainingEnv(
                from_dict({"unroll": {"backend": backend}}, copy.deepcopy(cfg)),
                env.splits,
                env.base_phi,
            )
            teacher = LSTMTeacher.for_env(bench_env, update=update)
            teacher.start_episode(bench_env)
            rows[f"env meta-training, {update}, {backend}"] = _time_per_student_step(
                bench_env, functools.partial(teacher.teacher_step, bench_env), budget_s
            )
    rows.update(estimator_rows(cfg, env, budget_s))
    base = rows["plain CE step"]
    print(
        f"l2t bench: dataset={cfg.dataset} student={cfg.student} K={cfg.unroll.steps} "
        f"batch={cfg.optim.batch_size} device={env.device} torch={torch.__version__} "
        f"threads={torch.get_num_threads()} ({platform.processor() or platform.machine()})"
    )
    print(f"| {'mode':<36} | ms / student step | x plain CE |")
    print(f"|{'-' * 38}|------------------|------------|")
    for name, ms in rows.items():
        print(f"| {name:<36} | {ms:16.3f} | {ms / base:10.2f} |")
    print("\nmemory kept for the meta-gradient of one unroll (autograd saved tensors):")
    for k in (5, 10, 20, 40):
        mib = saved_tensor_bytes(cfg, k) / 2**20
        rows[f"saved MiB, K={k}"] = mib
        print(f"  K={k:<3} {mib:8.2f} MiB  ({mib / k:.3f} MiB per step)")
    return rows

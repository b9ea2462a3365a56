"""`l2t bench`: cost per student step of each way to train a student, relative to a plain
cross-entropy step, and the memory an unroll keeps for the meta-gradient as K grows.

Figures go to BENCHMARKS.md by hand, with the command, the machine and the date.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import queue
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from agents import FixedLossTeacher, ScheduleTeacher
from l2t.commands.applying import make_task
from l2t.commands.training import make_estimator, teacher_update
from l2t.config import Config, from_dict, parts, teachers, varied
from l2t.data.splits import Splits
from l2t.engine.lifetime import Policy, advance, start
from l2t.engine.population import unbatchable
from l2t.engine.schedule import Schedule
from l2t.engine.student_state import validate
from l2t.engine.task import Task
from l2t.estimators.online import OnlineTeacher, teach_while_learning
from l2t.io import distributed, threads
from l2t.io.tracking import Tracker
from l2t.learned_loss import LearnedLoss
from l2t.losses.composite import parse_ranges
from l2t.methods.correction import Corrected
from l2t.methods.margins import MarginRecorded
from l2t.methods.reweighting import BasePoint
from l2t.methods.trust import TrustWeighted


def _fixed_steps(task: Task, policy: Policy) -> Callable[[], int]:
    """A function that trains one teacher step of the student of seed 0 under `policy` on
    the lifetime path (a new student when one's budget is spent); returns student steps."""
    life = start(task, policy, 0)

    def step() -> int:
        nonlocal life
        if life.done(task):
            life = start(task, policy, 0)
        before = life.student.step
        life = advance(task, policy, {}, life).life
        return life.student.step - before

    return step


def _time_per_student_step(task: Task, policy: Policy, budget_s: float) -> float:
    """Warm (three teacher steps first), then as many teacher steps as fit in the budget."""
    step = _fixed_steps(task, policy)
    for _ in range(3):
        step()
    begin, steps = time.perf_counter(), 0
    while time.perf_counter() - begin < budget_s:
        steps += step()
    return (time.perf_counter() - begin) / steps * 1000.0


def criterion_rows(cfg: Config, budget_s: float) -> dict[str, float]:
    """`l2t.LearnedLoss` per call (forward and backward, a batch of 128 x 10 logits) against
    `nn.CrossEntropyLoss` on the same logits, in microseconds: a replayed schedule of the
    DLN and of the composite family at cross-entropy's point (alone, and with the terms the
    default controls move), and the configured teacher online, its proposal every K calls
    included (amortised over K). A call costs tens of microseconds, so the machine's drift
    is as large as the differences: the criteria run interleaved, in blocks of 20 calls,
    and each row is its median block."""
    logits = torch.randn(128, 10, requires_grad=True)
    targets = torch.randint(10, (128,))

    def call(criterion: Callable[..., torch.Tensor]) -> Callable[[], None]:
        return lambda: criterion(logits, targets).backward()

    calls = {"criterion: nn.CrossEntropyLoss, us": call(torch.nn.CrossEntropyLoss())}
    at_ce = {"family": "composite", "base": "ce"}
    for name, changes in (
        ("dln", {}),
        ("composite at ce", {"loss": {**at_ce, "ranges": ""}}),
        ("composite at ce, default controls", {"loss": at_ce}),
    ):
        run_cfg = varied(cfg, changes)
        base = parts.base_loss(run_cfg)
        schedule = Schedule([tuple(p.shape) for p in base])
        schedule.record(0.0, base)
        replay = ScheduleTeacher.from_schedule(schedule).around(base)
        k, lr = run_cfg.unroll.steps, run_cfg.optim.lr
        family, composite = run_cfg.loss.family, parts.composite(run_cfg)
        criterion = LearnedLoss(replay, "schedule", 10**9, k, family, composite, lr=lr)
        calls[f"criterion: LearnedLoss schedule, {name}, us"] = call(criterion)
    online_cfg = varied(cfg, {"teacher": {"observe": "state"}})
    teacher = teachers.teacher(online_cfg, parts.base_loss(online_cfg))
    k = online_cfg.unroll.steps
    family, composite = online_cfg.loss.family, parts.composite(online_cfg)
    online = LearnedLoss(teacher, "online", 10**9, k, family, composite, lr=online_cfg.optim.lr)
    online.observe(2.3, 0.1)

    def online_call() -> None:
        online(logits, targets).backward()
        online.step()

    calls["criterion: LearnedLoss online, us"] = online_call
    return _interleaved_us(calls, budget_s)


def _interleaved_us(calls: dict[str, Callable[[], None]], budget_s: float) -> dict[str, float]:
    """Microseconds per call of each of `calls`, timed in turn in blocks of 20 calls (warm)
    for about `budget_s` each: the median block of each."""
    blocks: dict[str, list[float]] = {name: [] for name in calls}
    for fn in calls.values():
        for _ in range(10):
            fn()
    begin = time.perf_counter()
    while time.perf_counter() - begin < budget_s * len(calls) or len(blocks[next(iter(calls))]) < 5:
        for name, fn in calls.items():
            start = time.perf_counter()
            for _ in range(20):
                fn()
            blocks[name].append((time.perf_counter() - start) / 20 * 1e6)
    return {name: statistics.median(times) for name, times in blocks.items()}


def _base(cfg: Config, task: Task) -> list[torch.Tensor]:
    return [p.to(task.device) for p in parts.base_loss(cfg)]


def saved_tensor_bytes(cfg: Config, splits: Splits, k: int) -> int:
    """Bytes autograd saves for the meta-gradient of one K-step unroll (CPU-measurable)."""

    changed = varied(cfg, {"unroll": {"steps": k}, "steps": max(k, cfg.steps)})
    task = make_task(changed, splits)
    phi = [p.clone().requires_grad_() for p in _base(cfg, task)]
    student, batches = task.init(0), task.batches(0, 0)
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = task.loss_fn(phi)
        end = task.train(student, loss, batches, create_graph=True)
        validate(task.model, end, batches.x_val, batches.y_val)
    return total


ESTIMATOR_BENCH = {  # name: (estimator, observe, population or students, horizon, vmap)
    "estimator greedy (observe g)": ("greedy", "grad", 1, 1, False),
    "estimator greedy, 8 students vmapped": ("greedy", "grad", 8, 1, True),
    "estimator tbptt, T=5 (observe g)": ("tbptt", "grad", 1, 5, False),
    "estimator pes, T=5 (observe g)": ("pes", "grad", 1, 5, False),
    "estimator pes, T=5 (observe state)": ("pes", "state", 1, 5, False),
    "estimator pes, T=5, 8 pairs vmapped": ("pes", "state", 8, 5, True),
}


def _estimator(
    cfg: Config, task: Task, observe: str, changes: dict[str, Any]
) -> tuple[Any, Any, Any] | None:
    """(estimator, teacher, task) of the default teacher observing `observe`, with
    `estimator.*` changes, or None (said) when they ask for a vmapped population the
    student cannot have."""

    changed = {"teacher": {"observe": observe}, "estimator": changes}
    run_cfg = varied(cfg, changed)
    teacher = teachers.teacher(run_cfg, _base(cfg, task))
    task = make_task(run_cfg, task.splits)
    reason = unbatchable(task.model, task.splits) if run_cfg.estimator.vmap else None
    if reason:
        print(f"(a vmapped row is left out: {reason})")
        return None
    return make_estimator(run_cfg, task, teacher), teacher, task


def estimator_rows(cfg: Config, task: Task, budget_s: float) -> dict[str, float]:
    """Milliseconds per student step advanced by each estimator, everything included
    (teacher, validation, second-order passes); es costs what pes does per step."""
    rows = {}
    for name, (estimator, observe, members, horizon, vmap) in ESTIMATOR_BENCH.items():
        changes = {"kind": estimator, "horizon": horizon, "population": members, "vmap": vmap}
        built = _estimator(cfg, task, observe, changes)
        if built is not None:
            est, teacher, _ = built
            per_update = members * horizon * task.k * (2 if estimator in ("pes", "es") else 1)
            rate = _estimates_per_second(est, teacher.theta(), budget_s)
            rows[name] = 1000.0 / (rate * per_update)
    return rows


def _estimates_per_second(est: Any, theta: dict[str, torch.Tensor], budget_s: float) -> float:
    est.estimate(theta)  # warm, and the population started
    start, updates = time.perf_counter(), 0
    while time.perf_counter() - start < budget_s:
        est.estimate(theta)
        updates += 1
    return updates / (time.perf_counter() - start)


VMAP_BENCH = {  # name: (population, vmap)
    "pes, population 1, one at a time, updates/s": (1, False),
    "pes, population 8, one at a time, updates/s": (8, False),
    "pes, population 8, vmapped, updates/s": (8, True),
}


def vmap_rows(cfg: Config, task: Task, budget_s: float) -> dict[str, float]:
    """Teacher updates per second of PES (horizon 2, observing the state) with one student
    pair, and with eight advanced one after another or together (l2t/engine/population.py)."""
    rows: dict[str, float] = {}
    for name, (population, vmap) in VMAP_BENCH.items():
        changes = {"kind": "pes", "horizon": 2, "population": population, "vmap": vmap}
        built = _estimator(cfg, task, "state", changes)
        if built is not None:
            rows[name] = _estimates_per_second(built[0], built[1].theta(), budget_s)
    return rows


def _ce_steps_worker(cfg_dict: dict[str, Any], steps: int, ready: Any, times: Any) -> None:
    """A process that trains `steps` plain CE student steps once every process is ready."""

    cfg = from_dict(cfg_dict)
    threads.configure(cfg.threads)
    task = make_task(cfg)
    step = _fixed_steps(task, FixedLossTeacher("ce"))
    ready.wait()
    threads.configure(cfg.threads)  # every process is registered now: take the final share
    begin, done = time.perf_counter(), 0
    while done < steps:
        done += step()
    times.put(time.perf_counter() - begin)


def concurrent_seconds(cfg: Config, processes: int, steps: int) -> float:
    """Wall seconds until `processes` l2t processes, started together, have each trained
    `steps` plain CE student steps (threads chosen as `threads=` says: auto by default)."""
    context = multiprocessing.get_context("spawn")
    ready, times = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_ce_steps_worker, args=(cfg.to_dict(), steps, ready, times))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    results: list[float] = []
    while len(results) < processes:
        try:
            results.append(times.get(timeout=1.0))
        except queue.Empty:
            if any(w.exitcode not in (None, 0) for w in workers):
                raise RuntimeError("a benchmark process failed (its traceback is above)") from None
    for w in workers:
        w.join()
    return max(results)


def _updates_worker(
    rank: int, world: int, port: int, settings: dict[str, Any], updates: int, times: Any
) -> None:
    """One process of a run over `world`: `updates` teacher updates of its share of the
    population, the estimates summed over the processes (l2t.commands.training.teacher_update)."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )

    cfg = from_dict(settings)
    distributed.init(torch.device("cpu"))
    threads.configure(cfg.threads)
    torch.manual_seed(cfg.seed)
    task = make_task(cfg)
    teacher = teachers.teacher(cfg, _base(cfg, task))
    distributed.from_first(list(teacher.state_dict().values()))
    estimator = make_estimator(cfg, task, teacher)
    tracker = Tracker(None)
    teacher_update(teacher, estimator, tracker, 0)  # warm, and the population started
    begin = time.perf_counter()
    for _ in range(updates):
        teacher_update(teacher, estimator, tracker, 0)
    times.put(time.perf_counter() - begin)
    distributed.close()


def updates_per_second(cfg: Config, processes: int, updates: int) -> float:
    """Teacher updates per second of one run whose population is spread over `processes`
    (gloo on 127.0.0.1), each process holding `cores // processes` threads."""

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = varied(cfg, {"threads": max(1, threads.cores() // processes)})
    context = multiprocessing.get_context("spawn")
    times = context.Queue()
    workers = [
        context.Process(
            target=_updates_worker,
            args=(r, processes, port, settings.to_dict(), updates, times),
        )
        for r in range(processes)
    ]
    for w in workers:
        w.start()
    results = [times.get(timeout=600) for _ in workers]
    for w in workers:
        w.join()
    return updates / max(results)


def bench_record(cfg: Config, rows: dict[str, float], command: list[str]) -> dict[str, Any]:
    """What `l2t bench out=FILE.json` writes: the rows under the Markdown table's names, each
    ms per student step and its ratio to a plain CE step (memory rows in MiB, concurrency
    rows in seconds), and where and how they were measured."""
    base = rows["plain CE step"]
    return {
        "command": " ".join(command),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.processor() or platform.machine()}, {threads.cores()} cores",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "dataset": cfg.dataset,
        "student": cfg.student,
        "unroll_steps": cfg.unroll.steps,
        "batch_size": cfg.optim.batch_size,
        "rows": {
            name: {"ms_per_student_step": ms, "x_plain_ce": ms / base}
            for name, ms in rows.items()
            if not name.startswith(("saved MiB", "plain CE, ", "pes, ", "criterion: "))
        },
        "criterion_us": {name: v for name, v in rows.items() if name.startswith("criterion: ")},
        "saved_mib": {name: v for name, v in rows.items() if name.startswith("saved MiB")},
        "concurrent_s": {name: v for name, v in rows.items() if name.startswith("plain CE, ")},
        "updates_per_s": {name: v for name, v in rows.items() if name.startswith("pes, ")},
    }


def online_teacher(cfg: Config, task: Task, backend: str, update: str) -> tuple[Any, Any]:
    """A task of 10 teacher steps with the unroll `backend`, and the paper's LSTM teacher
    (observing dL_val/dphi, learning by `update` while it teaches) sized by the config's
    `teacher.*`: what the "online learning" rows time (l2t/estimators/online.py)."""

    changes = {"agent": "lstm", "update": update, "observe": "grad"}
    run_cfg = varied(
        cfg, {"steps": 10 * cfg.unroll.steps, "unroll": {"backend": backend}, "teacher": changes}
    )
    return make_task(run_cfg, task.splits), teachers.teacher(run_cfg, _base(cfg, task))


def _online_ms(task: Task, teacher: OnlineTeacher, budget_s: float) -> float:
    """Milliseconds per student step of a teacher learning while it teaches (warm)."""

    teach_while_learning(task, teacher, 0, task.steps)
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < budget_s or not steps:
        teach_while_learning(task, teacher, 0, task.steps)
        steps += task.steps
    return (time.perf_counter() - start) / steps * 1000.0


def pool_rows(cfg: Config, task: Task, budget_s: float) -> dict[str, float]:
    """With an unlabeled pool at the composite's base point (issue 33): a student step
    at the base point (a KD student at `loss.base=kd`), under `meta_trust`'s and
    `meta_trust_aum`'s online weights and `meta_correct`'s online correction, and
    `aum_drop`'s recording round."""
    if not (task.splits.pool and task.composite is not None):
        return {}
    base = parts.base_loss(cfg)
    point = BasePoint(task.composite, base, parse_ranges(cfg.loss.ranges))
    policies: dict[str, Policy] = {
        "pool: the base point": FixedLossTeacher("base", base),
        "pool: meta_trust": TrustWeighted(task, 0, point),
        "pool: meta_trust_aum": TrustWeighted(task, 0, point, history=True),
        "pool: meta_correct": Corrected(task, 0, point),
        "pool: aum_drop's first round": MarginRecorded(task, 0, task.loss_fn(base)),
    }
    return {name: _time_per_student_step(task, p, budget_s) for name, p in policies.items()}


def run_bench(cfg: Config, budget_s: float = 3.0) -> dict[str, float]:

    threads.configure(cfg.threads)
    torch.manual_seed(cfg.seed)
    task = make_task(cfg)
    rows: dict[str, float] = {}
    ce, dln = FixedLossTeacher("ce"), FixedLossTeacher("base_dln", _base(cfg, task))
    rows["plain CE step"] = _time_per_student_step(task, ce, budget_s)
    rows["schedule replay (fixed DLN)"] = _time_per_student_step(task, dln, budget_s)
    for backend in ("higher", "func"):
        for update in ("fused", "three_stage"):
            online, teacher = online_teacher(cfg, task, backend, update)
            rows[f"online learning, {update}, {backend}"] = _online_ms(online, teacher, budget_s)
    rows.update(estimator_rows(cfg, task, budget_s))
    rows.update(vmap_rows(cfg, task, budget_s))
    rows.update(pool_rows(cfg, task, budget_s))
    calls = criterion_rows(cfg, min(budget_s, 1.0))
    base = rows["plain CE step"]
    print(
        f"l2t bench: dataset={cfg.dataset} student={cfg.student} K={cfg.unroll.steps} "
        f"batch={cfg.optim.batch_size} device={task.device} torch={torch.__version__} "
        f"threads={torch.get_num_threads()} ({platform.processor() or platform.machine()})"
    )
    print(f"| {'mode':<36} | ms / student step | x plain CE |")
    print(f"|{'-' * 38}|------------------|------------|")
    for name, ms in rows.items():
        if not name.startswith("pes, "):
            print(f"| {name:<36} | {ms:16.3f} | {ms / base:10.2f} |")
    print("\nPES (horizon 2, observing the state), teacher updates per second:")
    for name in VMAP_BENCH:
        if name in rows:
            print(f"  {name.removesuffix(', updates/s'):<40} {rows[name]:8.3f}")
    ce_call = calls["criterion: nn.CrossEntropyLoss, us"]
    print("\nthe loss as a criterion, one call (forward + backward, 128 x 10 logits):")
    for name, us in calls.items():
        label = name.removeprefix("criterion: ").removesuffix(", us")
        print(f"  {label:<40} {us:8.1f} us  ({us / ce_call:.2f}x cross-entropy)")
    rows.update(calls)
    print("\nmemory kept for the meta-gradient of one unroll (autograd saved tensors):")
    for k in (5, 10, 20, 40):
        mib = saved_tensor_bytes(cfg, task.splits, k) / 2**20
        rows[f"saved MiB, K={k}"] = mib
        print(f"  K={k:<3} {mib:8.2f} MiB  ({mib / k:.3f} MiB per step)")
    steps = max(cfg.unroll.steps, round(budget_s * 1000 / base))  # ~budget_s alone
    one, two = concurrent_seconds(cfg, 1, steps), concurrent_seconds(cfg, 2, steps)
    rows["plain CE, 1 process, s"], rows["plain CE, 2 processes at once, s"] = one, two
    chosen = cfg.threads or os.environ.get("OMP_NUM_THREADS") or "auto"
    print(
        f"\n{steps} plain CE steps in one process: {one:.2f} s; in each of two at once: "
        f"{two:.2f} s ({two / one:.2f}x; threads={chosen})"
    )
    spread = varied(cfg, {"estimator": {"kind": "pes", "population": 4, "horizon": 2}})
    updates = max(2, round(budget_s))
    for processes in (1, 2):
        rate = updates_per_second(spread, processes, updates)
        rows[f"pes, population 4, {processes} process(es), updates/s"] = rate
    one, two = rows["pes, population 4, 1 process(es), updates/s"], rate
    print(
        f"PES, population 4, horizon 2: {one:.3f} teacher updates/s in one process, "
        f"{two:.3f} spread over two (gloo): scaling efficiency {two / one / 2:.2f}"
    )
    return rows

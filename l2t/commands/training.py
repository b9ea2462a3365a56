"""Meta-training a teacher (`l2t train-teacher`), top to bottom.

1. Resolve the run directory, data, the base loss `phi_0` and the task.
2. For each episode: the estimator's population of students each live one lifetime's worth
   of teacher steps, one teacher update (estimate, Adam step) at a time (docs/design.md §4;
   the REINFORCE agent instead learns from one student in the gymnasium environment). Then
   the teacher, frozen, teaches `select_students` held-out students on the same lifetime
   path, scored as it will be used; a trained teacher replaces the untrained one only when
   a one-sided paired test on those students says it is better (l2t/engine/selection.py,
   docs/design.md §5). A checkpoint after every episode allows exact resume.
3. The kept teacher, frozen, teaches a new student (its loss schedule is recorded), and a
   cross-entropy student and a student under the fixed base loss `phi_0` with the same
   initialization, batches and budget are trained; all three are evaluated on the test
   split, which the teacher never saw.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from agents import (
    ControlTeacher,
    FixedLossTeacher,
    ReinforceTeacher,
    Teacher,
)
from envs.student_training import StudentTrainingEnv
from l2t.commands.applying import teach_student
from l2t.config import Config, ConfigError, migrate, mix_of, parts, teachers
from l2t.data.datasets import record_noise
from l2t.data.splits import Splits
from l2t.engine.lifetime import Lifetime, Step
from l2t.engine.population import unbatchable
from l2t.engine.schedule import Schedule
from l2t.engine.seeds import student_seed
from l2t.engine.selection import judge
from l2t.engine.students import build_student
from l2t.engine.task import Task
from l2t.engine.teaching import EpisodeResult, OnStep, run_student
from l2t.estimators import ESTIMATORS, Diverged, Estimator, EstimatorSettings
from l2t.io import distributed, out_dir, progress, run_lock, stopping, threads
from l2t.io.checkpoint import (
    Fields,
    atomic_save,
    atomic_write_json,
    atomic_write_text,
    expect,
    load_checkpoint,
)
from l2t.io.device import resolve_device
from l2t.io.plots import plot_curves, plot_schedule
from l2t.io.tracking import Tracker, read_metrics
from l2t.losses.composite import parse_ranges
from l2t.methods.base_point import choose_base


@dataclass
class TrainResult:
    run_dir: Path
    best_episode: int  # the episode whose teacher selection kept; -1: the untrained teacher
    best_val_acc: float  # its selection score: mean final val accuracy of held-out students
    teacher_test_acc: float
    ce_test_acc: float
    base_loss_test_acc: float  # the family's base loss, no teacher: a baseline to beat
    meta_training_diverged_steps: int = 0  # teacher steps retaken under the base loss
    teacher_diverged_steps: int = 0  # the same, in the final evaluation student


def _distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return torch.cat([(x - y).flatten() for x, y in zip(a, b)]).norm().item()


RESUMABLE_CHANGES = (  # a resumed run may change these (threads: numbers may differ slightly)
    "episodes",
    "resume",
    "out",
    "tracking",
    "wandb",
    "device",
    "progress",
    "threads",
    "checkpoint_every",
    "max_divergences",
)


def _check_same_run(saved: dict[str, Any], now: dict[str, Any], prefix: str = "") -> None:
    """Resuming with another config would mix two experiments in one run directory."""
    for key, value in saved.items():
        if prefix + key in RESUMABLE_CHANGES:
            continue
        if isinstance(value, dict):
            _check_same_run(value, now.get(key, {}), f"{prefix}{key}.")
        elif now.get(key) != value:
            raise ConfigError(
                f"resume=true, but {prefix}{key} was {value!r} in this run and is now "
                f"{now.get(key)!r}; only {', '.join(RESUMABLE_CHANGES)} may change"
            )


def _check_run_dir(cfg: Config) -> Path:
    """The run directory, if `resume` matches what is there (nothing is created yet)."""
    run_dir = Path(cfg.out)
    out_dir.check(run_dir, "train-teacher")
    checkpoint = run_dir / "checkpoint.pt"
    if cfg.resume and not checkpoint.exists():
        raise ConfigError(f"resume=true, but '{checkpoint}' does not exist")
    if not cfg.resume and checkpoint.exists():
        raise ConfigError(
            f"'{run_dir}' already holds a run; pass resume=true to continue it or another out=DIR"
        )
    return run_dir


def make_estimator(cfg: Config, tasks: Task | list[Task], policy: Any) -> Estimator:
    """The outer-gradient estimator `estimator.kind` names (l2t/estimators/), running this
    process's share of the population (over the architectures of `tasks`)."""
    e = cfg.estimator
    settings = EstimatorSettings(
        population=teachers.population(e),
        horizon=e.horizon,
        sigma=e.sigma,
        objective=e.objective,
        objective_from=e.objective_from,
        seed=cfg.seed,
        max_divergences=cfg.max_divergences,
        rank=distributed.rank(),
        world=distributed.world(),
        vmap=e.vmap,
    )
    if isinstance(policy, ControlTeacher):
        settings.sigma_of = policy.sigma_of(e.sigma, per_control_sigmas(cfg))
    for task in [tasks] if isinstance(tasks, Task) else tasks:
        check_batchable(cfg, task.model, task.splits)
    return ESTIMATORS[e.kind](tasks, policy, settings)


def per_control_sigmas(cfg: Config) -> dict[str, float]:
    """`estimator.sigma_controls`, checked against the controls `loss.ranges` moves."""
    try:
        sigmas = parse_ranges(cfg.estimator.sigma_controls, "estimator.sigma_controls")
        moved = parse_ranges(cfg.loss.ranges)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for name, value in sigmas.items():
        if not value > 0:
            raise ConfigError(f"estimator.sigma_controls: the sigma of {name} must be > 0")
        if moved.get(name, 0.0) <= 0:
            raise ConfigError(f"estimator.sigma_controls: loss.ranges does not move {name}")
    return sigmas


def check_batchable(cfg: Config, model: torch.nn.Module, splits: Splits) -> None:
    """Refuse `estimator.vmap=true` for students it cannot batch (l2t/engine/population.py)."""
    reason = unbatchable(model, splits) if cfg.estimator.vmap else None
    if reason:
        raise ConfigError(
            f"estimator.vmap=true cannot batch these students: {reason}; use estimator.vmap=false"
        )


def updates_per_episode(cfg: Config, task: Task) -> int:
    """Teacher updates in which each student of the population lives one lifetime."""
    horizon = {"greedy": 1, "es": task.teacher_steps}.get(cfg.estimator.kind, cfg.estimator.horizon)
    return math.ceil(task.teacher_steps / horizon)


def _after_update(done: int, stop: bool, every: int, last: bool, save: Callable[[], None]) -> None:
    """A checkpoint every `every` updates of an episode (its end is saved by the episode
    loop) and on a stop, which then ends the run."""
    if stop or (every and done % every == 0 and not last):
        save()
    if stop:
        raise KeyboardInterrupt


def teacher_update(teacher: Teacher, estimator: Estimator, tracker: Tracker, episode: int) -> bool:
    """One estimate (summed over the processes that share the population) and the teacher's
    Adam step; a non-finite estimate is skipped. Returns whether any process was asked to
    stop: all of them stop after the same update."""
    threads.rebalance()
    diverged_before, failure = estimator.diverged, None
    theta = teacher.theta()
    try:
        grad, metrics = estimator.estimate(theta)
    except Diverged as exc:  # every process must hear of it, or the others would wait
        failure, metrics = exc, {}
        grad = {name: torch.zeros_like(p) for name, p in theta.items()}
    status = [float(failure is not None), float(stopping.requested())]
    status.append(float(estimator.diverged - diverged_before))
    failed, stop, diverged = distributed.sum_([torch.tensor(status, dtype=torch.float64)])[0]
    if failed:
        raise failure or Diverged(
            "the students of another process kept breaking; its line in the log says why"
        )
    names, keys = list(grad), sorted(metrics)
    values = torch.tensor([metrics[k] for k in keys], dtype=torch.float64)
    *summed, values = distributed.sum_([grad[name] for name in names] + [values])
    grad = dict(zip(names, summed))
    metrics = {k: float(v) for k, v in zip(keys, values)}
    metrics["diverged_steps"] = int(diverged)
    finite = all(bool(torch.isfinite(g).all()) for g in grad.values())
    optimizer = teacher.optimizer
    assert optimizer is not None, "an estimator trains a learning teacher"
    if finite:  # a non-finite estimate is skipped, never applied
        for name, p in teacher.named_parameters():
            p.grad = grad[name]
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grad.values()))
    record = {"update": estimator.updates, "grad_norm": norm, "skipped": float(not finite)}
    tracker.log({"phase": "meta", "episode": episode, **record, **metrics})
    return bool(stop)


CHECKPOINT_FIELDS: Fields = {  # what resume reads of a checkpoint (its format, every version)
    "episode": int,
    "teacher": dict,
    "teacher_extra": dict,
    "best_val_acc": (int, float),
    "best_episode": int,
    "metrics_lines": int,
    "config": dict,
}


@dataclass
class Checkpoint:
    """Everything to continue a run exactly from `update` teacher updates into `episode`:
    written as a plain dict (`vars`), read back field by field (docs/design.md §4)."""

    episode: int  # episodes finished
    update: int  # teacher updates into `episode`
    teacher: dict[str, Any]  # its state_dict
    teacher_extra: dict[str, Any]  # its optimizer's state
    estimators: list[Any]  # each process's share of the population, in rank order
    best_teacher: dict[str, Any] | None  # the kept teacher's state_dict (None: none scored yet)
    best_val_acc: float
    best_episode: int
    metrics_lines: int  # lines of metrics.jsonl written so far (a resume drops the rest)
    config: dict[str, Any]
    episode_in_hand: dict[str, Any] | None = None  # the REINFORCE agent's student part way
    # each selection student's score under the untrained teacher: what a trained one must
    # beat, paired (None: a checkpoint from before paired selection, judged by the mean)
    untrained_scores: list[float] | None = None

    @classmethod
    def load(cls, path: Path, device: torch.device) -> Checkpoint:
        what = "a checkpoint of l2t train-teacher"
        data = expect(load_checkpoint(path, device), path, what, CHECKPOINT_FIELDS)
        data["config"] = migrate(data["config"])
        data.setdefault("update", 0)  # before checkpoints inside an episode
        if "estimators" not in data:  # before runs over several processes
            data["estimators"] = [data.pop("estimator", None)]
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


@dataclass
class Run:
    """A meta-training run as set up: what the loop, the checkpoints and the final
    evaluation share."""

    cfg: Config
    run_dir: Path
    rank: int
    world: int
    splits: Splits
    base_phi: list[torch.Tensor]
    task: Task  # the final evaluation's students
    tasks: list[Task]  # one per architecture of students_mix (the population's, selection's)
    teacher: Teacher
    estimator: Estimator | None  # LSTM and MLP teachers: a population of lifetimes
    env: StudentTrainingEnv | None  # the REINFORCE agent: one student at a time, in the env
    per_episode: int  # teacher updates in an episode
    state: Checkpoint  # where the run stands
    base_point: list[dict[str, Any]]  # loss.base=auto: every candidate's score, best first
    tracker: Tracker = dataclasses.field(init=False)
    # called with (episode, selection score) after each episode's checkpoint: a sweep's
    # pruner reads the learning curve here (it may raise to stop the run, resumable)
    on_episode: Callable[[int, float], None] | None = None


def _setup(cfg: Config) -> Run:
    """Data, base loss, teacher and estimator; the checkpoint of a resumed run loaded."""
    teachers.check(cfg)
    run_dir = _check_run_dir(cfg)
    device = resolve_device(cfg.device, cfg.tf32)
    rank, world = distributed.init(device)
    threads.configure(cfg.threads)
    torch.manual_seed(cfg.seed)
    splits = parts.splits(cfg, device)
    for arch in mix_of(cfg):  # refused before the base point's grid, not after it
        check_batchable(cfg, build_student(arch, splits.input_shape, splits.num_classes), splits)
    per_control_sigmas(cfg)
    cfg, ranked = choose_base(cfg, splits)  # loss.base=auto: the best fixed point on val
    base_phi = parts.base_loss(cfg)
    distributed.from_first(base_phi)  # fitted in each process; rank 0's is everyone's
    base_phi = [p.to(device) for p in base_phi]
    tasks = parts.tasks(cfg, splits)
    in_env = teachers.teacher_kind(cfg).acts_in_env
    env = StudentTrainingEnv(cfg, splits, base_phi) if in_env else None
    teacher = teachers.teacher(cfg, base_phi, env)
    distributed.from_first(list(teacher.state_dict().values()))
    estimator, per_episode = None, 0  # a fixed loss learns nothing
    if teacher.trained_by_estimator:
        estimator = make_estimator(cfg, tasks, teacher)
        per_episode = updates_per_episode(cfg, tasks[0])
    elif env is not None:
        per_episode = env.teacher_steps
    if world > 1 and estimator is None:
        raise ConfigError(
            f"teacher.agent={cfg.teacher.agent} learns from one student at a time; only "
            "agent=lstm|mlp (a population) runs over several processes"
        )
    state = Checkpoint(0, 0, {}, {}, [], None, -math.inf, -1, 0, cfg.as_saved())
    if cfg.resume:
        state = Checkpoint.load(run_dir / "checkpoint.pt", device)
        _check_same_run(state.config, cfg.to_dict())
        teacher.load_state_dict(state.teacher)
        teacher.load_extra_state(state.teacher_extra)
        if estimator is not None:
            if len(state.estimators) != world:
                raise ConfigError(
                    f"'{run_dir}' was trained by {len(state.estimators)} process(es); resume it "
                    f"with as many (torchrun --nproc_per_node={len(state.estimators)}), not {world}"
                )
            estimator.load_state_dict(state.estimators[rank])
    task = parts.task(cfg, splits)
    return Run(
        cfg, run_dir, rank, world, splits, base_phi, task, tasks, teacher, estimator, env,
        per_episode, state, ranked,
    )  # fmt: skip


def _save(run: Run, episode: int, update: int, in_hand: dict[str, Any] | None = None) -> None:
    """A checkpoint at `update` teacher updates into `episode` (`in_hand`: the env-path
    student part way through its episode). Every process calls it: each one's share of
    the population is gathered, and rank 0 writes the one file."""
    teacher = run.teacher
    distributed.check_same(list(teacher.state_dict().values()), "teachers")
    shares = distributed.gather(run.estimator.state_dict() if run.estimator else None)
    if run.rank != 0:
        return
    state = run.state
    state.episode, state.update, state.episode_in_hand = episode, update, in_hand
    state.teacher, state.teacher_extra = teacher.state_dict(), teacher.extra_state()
    state.estimators, state.metrics_lines = shares, run.tracker.lines
    state.config = run.cfg.as_saved()
    run.tracker.sync()  # the lines it counts reach the disk before the checkpoint does
    atomic_save(dict(vars(state)), run.run_dir / "checkpoint.pt")


def train_teacher(
    cfg: Config,
    show_progress: bool = True,
    started: Callable[[Path], None] | None = None,
    on_episode: Callable[[int, float], None] | None = None,
) -> TrainResult | None:
    """Meta-train a teacher as configured; write the run directory; return the test results
    (None in the processes other than rank 0 of a run over several: rank 0 reports).
    `started` is called with the run directory once it exists (the CLI points
    `runs/latest` at it); `on_episode` with each episode's selection score (`Run`)."""
    try:
        progress.enable(show_progress and cfg.progress)
        run = _setup(cfg)
        run.on_episode = on_episode
        with run_lock.locked(run.run_dir, "train-teacher", enabled=run.rank == 0):  # rank 0
            return _train(run, show_progress, started)
    finally:  # a process that stops leaves the group, so the others stop instead of waiting
        distributed.close()


def _train(
    run: Run, show_progress: bool, started: Callable[[Path], None] | None
) -> TrainResult | None:
    """The run as set up: its directory written, meta-training, the final evaluation."""
    cfg = run.cfg  # with the base point chosen
    if run.rank == 0:  # the inputs are valid: start; one process writes the run directory
        (run.run_dir / "plots").mkdir(parents=True, exist_ok=True)
        print(f"run directory: {run.run_dir}", flush=True)
        if started is not None:
            started(run.run_dir)
        config_text = yaml.safe_dump(cfg.as_saved(), sort_keys=False)
        atomic_write_text(config_text, run.run_dir / "config.yaml")
        if run.base_point:
            atomic_write_json(run.base_point, run.run_dir / "base_point.json")
        record_noise(run.splits, run.run_dir)
    kept = run.state.metrics_lines if cfg.resume else None
    wandb = cfg.wandb if cfg.tracking == "wandb" else None
    run.tracker = Tracker(run.run_dir if run.rank == 0 else None, wandb, cfg.to_dict(), kept)
    progress.enable(show_progress and cfg.progress and run.rank == 0)
    try:
        diverged = meta_train(run)
    except BaseException:  # a stop or a run that breaks every student: the lines stay
        run.tracker.close()
        raise
    if run.rank != 0:  # rank 0 evaluates the kept teacher and writes the results
        run.tracker.close()
        return None
    return final_evaluation(run, diverged)


def meta_train(run: Run) -> int:
    """The outer loop: episodes of teacher updates, each followed by selection; returns
    the teacher steps retaken under the base loss, over every process."""
    cfg, state, teacher = run.cfg, run.state, run.teacher
    total = cfg.episodes * run.per_episode
    done = state.episode * run.per_episode + state.update
    bar = progress.bar("meta-training", total, "update", done)
    if state.best_teacher is None:  # the untrained teacher (about the base loss) competes
        state.untrained_scores = _selection_scores(run)
        state.best_val_acc = _mean(state.untrained_scores, -math.inf)
        state.best_teacher = copy.deepcopy(teacher.state_dict())
        run.tracker.log({"phase": "initial", "selection_val_acc": state.best_val_acc})
    for episode in range(state.episode, cfg.episodes):
        record: dict[str, Any] = {"phase": "episode", "episode": episode}
        first = state.update if episode == state.episode else 0
        if run.estimator is not None:  # a population of lifetimes, one estimate per update
            with stopping.safe_points():
                for update in range(first, run.per_episode):
                    stop = teacher_update(teacher, run.estimator, run.tracker, episode)
                    bar.update(1)
                    last = update + 1 == run.per_episode
                    save = functools.partial(_save, run, episode, update + 1)
                    _after_update(update + 1, stop, cfg.checkpoint_every, last, save)
            scores = _selection_scores(run)
        elif run.env is not None:  # one student in the env, the REINFORCE agent learning
            result = _reinforce_episode(run, episode, bar)
            scores = _selection_scores(run) if cfg.select_students else [result.val_acc]
            record.update(
                val_acc=result.val_acc, diverged_steps=result.diverged_steps, curve=result.curve
            )
        else:  # a fixed loss: nothing to learn
            scores = []
        score = _mean(scores, -math.inf)
        if scores:  # paired with the untrained teacher's students (l2t/engine/selection.py)
            paired = state.untrained_scores if cfg.select_students else None
            verdict = judge(scores, paired, cfg.select_level)
            record.update(selection_accepted=verdict.accepted)
            if not math.isnan(verdict.p):
                record.update(selection_p=verdict.p)
            better = verdict.accepted and score > state.best_val_acc
            kept = "kept" if better else "not kept"
            print(f"episode {episode}: {verdict.reason(cfg.select_level)}: {kept}", flush=True)
            if better:
                state.best_val_acc, state.best_episode = score, episode
                state.best_teacher = copy.deepcopy(teacher.state_dict())
        run.tracker.log({**record, "selection_val_acc": score, "best_episode": state.best_episode})
        _save(run, episode + 1, 0)
        if run.on_episode is not None and scores:
            run.on_episode(episode, score)
    bar.close()
    own = float(run.estimator.diverged) if run.estimator is not None else 0.0
    (diverged,) = distributed.sum_([torch.tensor(own, dtype=torch.float64)])
    distributed.close()  # the last exchange: the processes part here
    return int(diverged)


def _selection_scores(run: Run) -> list[float]:
    """Final val accuracy of each of the `select_students` fresh students taught by the
    teacher as it is now, frozen — the way it will be used (student i of the architecture
    i mod n, as in the population); the same seeds for every teacher, so scores pair.
    Each process teaches its share; every process gets all of them (an empty list with 0)."""
    cfg = run.cfg
    mine = range(run.rank, cfg.select_students, run.world)
    scores = torch.zeros(cfg.select_students, dtype=torch.float64)
    with progress.phase("selection students", len(mine) * cfg.steps):
        for i in mine:
            scores[i] = teach_student(
                cfg,
                run.tasks[i % len(run.tasks)],
                run.teacher,
                run.base_phi,
                student_seed(cfg.seed, "selection", i),
                cfg.steps,
            ).val_acc
    (scores,) = distributed.sum_([scores])
    return [float(v) for v in scores]


def _mean(values: list[float], empty: float) -> float:
    return sum(values) / len(values) if values else empty


def _reinforce_episode(run: Run, episode: int, bar: Any) -> EpisodeResult:
    """One student in the environment while the REINFORCE agent learns from it
    (`agents/reinforce_teacher.py`); a stop part way checkpoints the student in hand."""
    cfg, env, teacher = run.cfg, run.env, run.teacher
    assert env is not None and isinstance(teacher, ReinforceTeacher)
    in_hand = run.state.episode_in_hand if episode == run.state.episode else None

    def log_step(record: dict[str, Any], so_far: EpisodeResult) -> None:
        params = teacher.current_params()
        if params is not None:  # how far the teacher moved the loss from its base
            record["drift"] = _distance(params, run.base_phi)
        run.tracker.log({"phase": "meta", "episode": episode, **record})
        bar.update(1)
        bar.set_postfix(val_acc=f"{record['val_acc']:.3f}", drift=record.get("drift"))
        done = math.ceil(env.t / env.task.k)
        save = lambda: _save(run, episode, done, teacher.in_hand(env, so_far))  # noqa: E731
        _after_update(done, stopping.requested(), cfg.checkpoint_every, env.done, save)

    with stopping.safe_points():
        seed = student_seed(cfg.seed, "train", episode)
        return teacher.learn_episode(env, seed, cfg.eval_every, log_step, in_hand)


def final_evaluation(run: Run, meta_diverged: int) -> TrainResult:
    """The kept teacher, frozen, teaches the run's evaluation student (its loss schedule
    recorded), beside a cross-entropy and a base-loss student of the same seed; all three
    are evaluated on the test split."""
    cfg, run_dir, teacher, base_phi = run.cfg, run.run_dir, run.teacher, run.base_phi
    assert run.state.best_teacher is not None, "selection scored the untrained teacher first"
    teacher.load_state_dict(run.state.best_teacher)
    teacher.save(run_dir / "teacher.pt", cfg.as_saved())
    schedule = Schedule([tuple(p.shape) for p in base_phi])
    seed, every = student_seed(cfg.seed, "evaluation", 0), cfg.eval_every
    test = (run.splits.x_test, run.splits.y_test)
    with progress.phase("final evaluation", 3 * cfg.steps):
        if isinstance(teacher, ReinforceTeacher):  # it acts through the environment
            assert run.env is not None
            taught = teacher.teach(run.env, seed, every, test, schedule)
        else:
            recorder = _record_into(schedule) if run.estimator is not None else None
            taught = run_student(run.task, teacher, teacher.theta(), seed, every, test, recorder)
        ce, base = (FixedLossTeacher(loss, base_phi) for loss in ("ce", "base_dln"))
        baseline = run_student(run.task, ce, {}, seed, every, test)
        fixed_base = run_student(run.task, base, {}, seed, every, test)
    if schedule.phi:  # fixed-loss teachers set no loss parameters
        schedule.save(run_dir / "schedule.pt")
    assert taught.test_acc is not None and baseline.test_acc is not None
    assert fixed_base.test_acc is not None
    episodes = [r for r in read_metrics(run_dir) if r.get("phase") == "episode"]
    if run.estimator is None:
        meta_diverged = sum(int(r.get("diverged_steps", 0)) for r in episodes)
    state = run.state
    summary = {
        "kept_teacher": "untrained" if state.best_episode < 0 else f"episode {state.best_episode}",
        "best_episode": state.best_episode,  # -1: the untrained teacher was kept
        "best_val_acc": state.best_val_acc,
        "teacher_test_acc": taught.test_acc,
        "ce_test_acc": baseline.test_acc,
        "base_loss_test_acc": fixed_base.test_acc,
        "teacher_val_acc": taught.val_acc,
        "ce_val_acc": baseline.val_acc,
        # teacher steps whose loss broke a student, each retaken under the base loss
        "meta_training_diverged_steps": meta_diverged,
        "teacher_diverged_steps": taught.diverged_steps,
    }
    tracker = run.tracker
    tracker.log(
        {"phase": "final", **summary, "teacher_curve": taught.curve, "ce_curve": baseline.curve}
    )
    atomic_write_json(summary, run_dir / "summary.json")
    curves = {"teacher": [taught.curve], "cross-entropy": [baseline.curve]}
    curves["base loss"] = [fixed_base.curve]
    background = [r["curve"] for r in episodes if "curve" in r]
    plots = [plot_curves(curves, run_dir / "plots" / "curves.png", background=background)]
    if schedule.phi:
        plots += plot_schedule(
            schedule, base_phi, cfg.loss.family, run_dir / "plots", cfg.label_noise
        )
    tracker.summary(summary)
    tracker.log_images(plots)
    tracker.log_artifact(run_dir / "teacher.pt", f"teacher-{run_dir.name}", "teacher")
    tracker.close()
    return TrainResult(
        run_dir,
        state.best_episode,
        state.best_val_acc,
        taught.test_acc,
        baseline.test_acc,
        fixed_base.test_acc,
        meta_diverged,
        taught.diverged_steps,
    )


def _record_into(schedule: Schedule) -> OnStep:
    """An `on_step` that records each teacher step's loss parameters by progress."""

    def record(step: Step, before: Lifetime, so_far: EpisodeResult) -> None:
        schedule.record(before.obs.progress, step.params)

    return record

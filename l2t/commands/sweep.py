"""`l2t sweep FILE.yaml`: a standard wandb sweep file whose parameters are dotted l2t config
keys, run by a W&B server when one is reachable, and locally otherwise.

- Online (credentials and WANDB_MODE not offline/disabled): `wandb.sweep` creates the sweep,
  the `wandb agent ENTITY/PROJECT/ID` line is printed so more machines can join, and this
  process runs `wandb.agent` for `--count` trials.
- Local: `grid` enumerates the product of the values exactly; `random` samples `--count`
  trials from the declared distributions with `--seed`; `bayes` is optuna's TPE
  (`l2t/commands/sweep_optuna.py`: its study resumes, `--workers` share it, wandb's
  `early_terminate` prunes on the learning curve). Every trial is an ordinary run
  directory under the sweep directory (its wandb run offline, in one group); `--workers N`
  runs trials in parallel processes; a summary table sorted by the metric ends the sweep,
  and running the command again skips finished trials (a trial cut off mid-way resumes
  from its checkpoint).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from l2t.commands.training import train_teacher
from l2t.config import (
    Config,
    ConfigError,
    allowed_keys,
    did_you_mean,
    from_dict,
    read_yaml,
    varied,
)
from l2t.io import out_dir, progress, run_lock, threads
from l2t.io.checkpoint import atomic_write_text
from l2t.io.tracking import wandb_mode

METHODS = ("grid", "random", "bayes")
GOALS = ("maximize", "minimize")
DISTRIBUTIONS = (
    "constant",
    "categorical",
    "int_uniform",
    "uniform",
    "q_uniform",
    "log_uniform_values",
    "q_log_uniform_values",
    "normal",
    "log_normal",
)
SWEEP_KEYS = (
    "name", "description", "method", "metric", "parameters", "project", "entity",
    "early_terminate",
)  # fmt: skip
STOPPING = ("type", "min_iter", "eta")  # early_terminate's keys l2t reads (type: hyperband)
PARAMETER_KEYS = ("values", "value", "distribution", "min", "max", "q", "mu", "sigma")
SUMMARY_METRICS = (
    "best_val_acc",
    "teacher_val_acc",
    "ce_val_acc",
    "teacher_test_acc",
    "ce_test_acc",
    "base_loss_test_acc",
)


@dataclass
class SweepSpec:
    name: str
    method: str
    metric: str
    goal: str
    parameters: dict[str, dict[str, Any]]
    raw: dict[str, Any]


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; every problem is one ConfigError line."""
    raw = read_yaml(path, "sweep file")
    if not isinstance(raw, dict):
        raise ConfigError(f"sweep file '{path}' must be a mapping (method, metric, parameters)")
    unknown = [str(k) for k in raw if k not in SWEEP_KEYS]
    if unknown:
        hint = did_you_mean(unknown[0], SWEEP_KEYS)
        raise ConfigError(
            f"sweep file '{path}': unknown key(s) {', '.join(unknown)}{hint}; allowed: "
            f"{', '.join(SWEEP_KEYS)} (l2t runs each trial itself: program and command are "
            "not read)"
        )
    method = raw.get("method")
    if method not in METHODS:
        raise ConfigError(f"sweep method must be one of {', '.join(METHODS)}; got {method!r}")
    metric = raw.get("metric") or {}
    if not isinstance(metric, dict) or metric.get("name") not in SUMMARY_METRICS:
        raise ConfigError(
            f"sweep metric.name must be one of {', '.join(SUMMARY_METRICS)}; "
            f"got {metric.get('name') if isinstance(metric, dict) else metric!r}"
        )
    goal = metric.get("goal", "maximize")
    if goal not in GOALS:
        raise ConfigError(f"sweep metric.goal must be maximize or minimize; got {goal!r}")
    _check_stopping(raw.get("early_terminate"), method)
    parameters = raw.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise ConfigError("sweep file needs a non-empty 'parameters' mapping of config keys")
    known = set(allowed_keys())
    for key, spec in parameters.items():
        if key not in known:
            raise ConfigError(
                f"sweep parameter '{key}' is not a config key; allowed: {', '.join(sorted(known))}"
            )
        _check_parameter(key, spec, method)
        for value in _example_values(spec):
            from_dict({key: value})  # the value has the key's type (raises ConfigError)
    return SweepSpec(
        raw.get("name") or Path(path).stem, method, metric["name"], goal, parameters, raw
    )


def _check_stopping(stop: Any, method: str) -> None:
    """wandb's `early_terminate`: hyperband, `min_iter` >= 1 episodes, `eta` >= 2."""
    if stop is None:
        return
    if not isinstance(stop, dict) or stop.get("type") != "hyperband":
        raise ConfigError("sweep early_terminate must be a mapping with type: hyperband")
    unknown = [str(k) for k in stop if k not in STOPPING]
    if unknown:
        raise ConfigError(
            f"sweep early_terminate: unknown key(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(STOPPING)}"
        )
    for key, least in (("min_iter", 1), ("eta", 2)):
        value = stop.get(key, least)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= least):
            raise ConfigError(f"sweep early_terminate.{key} must be an integer >= {least}")
    if method != "bayes" and wandb_mode() != "online":
        raise ConfigError(
            "early_terminate runs locally with method bayes (optuna), or on a W&B server"
        )


def _check_parameter(key: str, spec: Any, method: str) -> None:
    if not isinstance(spec, dict):
        raise ConfigError(f"sweep parameter '{key}' must be a mapping (values, value or min/max)")
    unknown = [str(k) for k in spec if k not in PARAMETER_KEYS]
    if unknown:
        raise ConfigError(
            f"sweep parameter '{key}': unknown key(s) {', '.join(unknown)}"
            f"{did_you_mean(unknown[0], PARAMETER_KEYS)}; allowed: {', '.join(PARAMETER_KEYS)}"
        )
    if "values" in spec:
        if not isinstance(spec["values"], list) or not spec["values"]:
            raise ConfigError(f"sweep parameter '{key}' has empty or non-list values")
    elif "value" not in spec:
        if "min" not in spec or "max" not in spec:
            if spec.get("distribution") not in ("normal", "log_normal"):
                raise ConfigError(f"sweep parameter '{key}' needs values, value, or min and max")
        else:
            _check_range(key, spec)
        if method == "grid":
            raise ConfigError(f"grid sweeps need 'values' for every parameter; '{key}' has a range")
    distribution = spec.get("distribution")
    if distribution is not None and distribution not in DISTRIBUTIONS:
        raise ConfigError(
            f"sweep parameter '{key}' has unknown distribution {distribution!r}; "
            f"allowed: {', '.join(DISTRIBUTIONS)}"
        )
    for name in ("q", "mu", "sigma"):
        value = spec.get(name)
        if value is not None and not _finite(value):
            raise ConfigError(f"sweep parameter '{key}': {name} must be a number; got {value!r}")
    if spec.get("q") is not None and not spec["q"] > 0:
        raise ConfigError(f"sweep parameter '{key}': q must be > 0; got {spec['q']}")
    if spec.get("sigma") is not None and not spec["sigma"] > 0:
        raise ConfigError(f"sweep parameter '{key}': sigma must be > 0; got {spec['sigma']}")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_range(key: str, spec: dict[str, Any]) -> None:
    """min and max: numbers, min < max, and > 0 where the draw is in log space."""
    lo, hi = spec["min"], spec["max"]
    if not (_finite(lo) and _finite(hi)):
        raise ConfigError(
            f"sweep parameter '{key}': min and max must be numbers; got {lo!r}, {hi!r}"
        )
    if not lo < hi:
        raise ConfigError(f"sweep parameter '{key}' needs min < max")
    if "log" in str(spec.get("distribution", "")) and not lo > 0:
        raise ConfigError(
            f"sweep parameter '{key}': {spec['distribution']} draws in log space, so min must "
            f"be > 0; got {lo}"
        )


def _example_values(spec: dict[str, Any]) -> list[Any]:
    if "values" in spec:
        return list(spec["values"])
    if "value" in spec:
        return [spec["value"]]
    return [v for v in (spec.get("min"), spec.get("max")) if v is not None]


def grid_trials(spec: SweepSpec) -> list[dict[str, Any]]:
    keys = list(spec.parameters)
    choices = [_example_values(spec.parameters[k]) for k in keys]
    return [dict(zip(keys, combo)) for combo in itertools.product(*choices)]


def _sample(spec: dict[str, Any], rng: random.Random) -> Any:
    """One draw from a wandb parameter spec (wandb's distribution names and semantics)."""
    if "value" in spec:
        return spec["value"]
    if "values" in spec:
        return rng.choice(spec["values"])
    distribution = spec.get("distribution")
    if distribution is None:
        ints = isinstance(spec["min"], int) and isinstance(spec["max"], int)
        distribution = "int_uniform" if ints else "uniform"
    if distribution in ("normal", "log_normal"):
        draw = rng.gauss(spec.get("mu", 0.0), spec.get("sigma", 1.0))
        return draw if distribution == "normal" else math.exp(draw)
    lo, hi = float(spec["min"]), float(spec["max"])
    q = spec.get("q", 1)
    if distribution == "int_uniform":
        return rng.randint(int(lo), int(hi))
    if distribution == "uniform":
        return rng.uniform(lo, hi)
    if distribution == "q_uniform":
        return round(rng.uniform(lo, hi) / q) * q
    if distribution in ("log_uniform_values", "q_log_uniform_values"):
        value = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        return round(value / q) * q if distribution.startswith("q_") else value
    raise ConfigError(f"distribution {distribution!r} cannot be sampled locally")


def random_trials(spec: SweepSpec, count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{k: _sample(p, rng) for k, p in spec.parameters.items()} for _ in range(count)]


def digest(params: dict[str, Any]) -> str:
    """A short name for a trial's parameters."""
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]


def trial_name(index: int, params: dict[str, Any]) -> str:
    return f"trial-{index:03d}-{digest(params)}"


def _run_trial(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """One trial in a worker process: an ordinary train-teacher run, wandb offline."""
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    cfg = from_dict(cfg_dict)
    if (Path(cfg.out) / "checkpoint.pt").exists():
        cfg.resume = True
    train_teacher(cfg, show_progress=False)
    return json.loads((Path(cfg.out) / "summary.json").read_text())


def run_local(
    spec: SweepSpec,
    base: Config,
    out: Path,
    count: int | None,
    workers: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Run the sweep here; returns one row per trial (params, summary or error)."""
    from l2t.commands import sweep_optuna

    if spec.method == "bayes":
        sweep_optuna.check(spec)
        trials = []
    elif spec.method == "grid":
        trials = grid_trials(spec)[: count or None]
    else:
        trials = random_trials(spec, count or 10, seed)
    written = yaml.safe_dump(spec.raw, sort_keys=False)
    if (out / "sweep.yaml").is_file() and (out / "sweep.yaml").read_text() != written:
        raise ConfigError(
            f"'{out}' holds another sweep (its sweep.yaml differs); choose another out=DIR"
        )
    out_dir.check(out, "sweep")  # refused before the note below: one line
    print(
        "no W&B server in use (offline, disabled or no credentials): running the sweep locally",
        file=sys.stderr,
    )
    with run_lock.locked(out, "sweep"):
        atomic_write_text(written, out / "sweep.yaml")
        if spec.method != "bayes":
            return _run_trials(spec, base, out, trials, workers)
        rows = sweep_optuna.run(spec, base, out, count or 10, workers, seed)
        table = summary_table(spec, rows)
        atomic_write_text(table, out / "sweep_results.md")
        print(table)
        return rows


def _run_trials(
    spec: SweepSpec, base: Config, out: Path, trials: list[dict[str, Any]], workers: int
) -> list[dict[str, Any]]:
    """Each trial not yet done, `workers` at a time; the table of all of them."""
    rows, pending = [], {}
    for i, params in enumerate(trials):
        name = trial_name(i, params)
        trial_dir = out / name
        cfg = varied(base, params)
        cfg.out, cfg.tracking, cfg.resume = str(trial_dir), "wandb", False
        cfg.threads = base.threads or max(1, threads.cores() // workers)  # one share each
        cfg.wandb.group, cfg.wandb.name = spec.name, name
        row: dict[str, Any] = {"trial": name, **params}
        rows.append(row)
        if (trial_dir / "summary.json").exists():
            row.update(json.loads((trial_dir / "summary.json").read_text()), status="skipped")
        else:
            pending[name] = cfg.to_dict()
    print(f"sweep {spec.name}: {len(trials)} trials, {len(trials) - len(pending)} already done")
    context = multiprocessing.get_context("spawn")
    progress.enable(base.progress)
    bar = progress.bar(f"sweep {spec.name}", len(pending), unit="trial")
    with concurrent.futures.ProcessPoolExecutor(max(1, workers), mp_context=context) as pool:
        futures = {pool.submit(_run_trial, c): n for n, c in pending.items()}
        for future in concurrent.futures.as_completed(futures):
            row = next(r for r in rows if r["trial"] == futures[future])
            try:
                row.update(future.result(), status="done")
            except Exception as exc:
                row.update(status=f"failed: {exc}".splitlines()[0])
            bar.update(1)
            bar.write(f"  {row['trial']}: {row['status']} {spec.metric}={row.get(spec.metric)}")
    bar.close()
    table = summary_table(spec, rows)
    atomic_write_text(table, out / "sweep_results.md")
    print(table)
    return rows


def summary_table(spec: SweepSpec, rows: list[dict[str, Any]]) -> str:
    keys = list(spec.parameters)
    finished = [r for r in rows if spec.metric in r]
    finished.sort(key=lambda r: r[spec.metric], reverse=spec.goal == "maximize")
    failed = [r for r in rows if spec.metric not in r]
    header = ["trial", *keys, spec.metric, "teacher_test_acc", "ce_test_acc", "status"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in finished + failed:
        cells = [r["trial"], *(r[k] for k in keys)]
        cells += [
            _fmt(r.get(spec.metric)),
            _fmt(r.get("teacher_test_acc")),
            _fmt(r.get("ce_test_acc")),
        ]
        lines.append("| " + " | ".join(str(c) for c in [*cells, r.get("status", "")]) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "" if value is None else str(value)


def run_online(spec: SweepSpec, base: Config, count: int | None) -> None:
    """Create the sweep on the W&B server and run an agent here."""
    import wandb

    project = spec.raw.get("project") or base.wandb.project
    config = {k: v for k, v in spec.raw.items() if k != "project"}
    sweep_id = wandb.sweep(config, project=project, entity=spec.raw.get("entity"))
    entity = spec.raw.get("entity") or wandb.Api().default_entity
    print(f"sweep created; more machines join with:\n  wandb agent {entity}/{project}/{sweep_id}")

    def trial() -> None:
        run = wandb.init()
        params = dict(run.config)
        cfg = varied(base, params)
        cfg.out = str(Path(base.out) / f"sweep-{sweep_id}" / run.id)
        cfg.tracking = "wandb"
        train_teacher(cfg, show_progress=False)

    wandb.agent(sweep_id, function=trial, project=project, count=count)


def sweep(
    path: str | Path,
    base: Config,
    count: int | None = None,
    workers: int = 1,
    seed: int = 0,
    out: str | Path | None = None,
) -> list[dict[str, Any]] | None:
    if count is not None and count < 1:
        raise ConfigError(f"--count must be >= 1; got {count}")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1; got {workers}")
    spec = load_sweep(path)
    if wandb_mode() == "online":
        run_online(spec, base, count)
        return None
    return run_local(spec, base, Path(out or f"runs/sweep-{spec.name}"), count, workers, seed)

"""A local `bayes` sweep without a W&B server: optuna's TPE over the same sweep file
(`pip install 'l2t[optuna]'`; `l2t/commands/sweep.py` runs grid and random itself).

The study lives in `OUT/optuna.journal` (optuna's journal file: several processes write it
at once), so `--workers N` runs N processes on one study, and running the command again
continues it: finished trials stay, a trial cut off mid-way is asked again with its own
parameters and resumes from its checkpoint (a trial's directory is named by its
parameters). wandb's `early_terminate: {type: hyperband, min_iter, eta}` prunes on the
learning curve — each episode's selection score — with optuna's Hyperband pruner; a pruned
trial's run directory stays, resumable. Distributions map to optuna's: values ->
categorical, int_uniform -> int, uniform / q_uniform -> float (step q), log_uniform_values
-> log float (q_: rounded to q); normal and log_normal have no TPE form and are refused.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

from l2t.config import Config, ConfigError, from_dict, varied

JOURNAL = "optuna.journal"
TPE_FREE = ("normal", "log_normal")  # drawn without bounds: no TPE form


def check(spec: Any) -> None:
    """Refuse, in one line, what the optuna backend cannot run (before any trial)."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError(
            "method bayes runs locally with optuna: pip install 'l2t[optuna]' (or use a W&B "
            "server, or method grid or random)"
        ) from None
    for key, p in spec.parameters.items():
        if p.get("distribution") in TPE_FREE:
            raise ConfigError(
                f"sweep parameter '{key}': {p['distribution']} has no bounds for optuna's TPE; "
                "give min and max (uniform, log_uniform_values) or use a W&B server"
            )


def suggest(trial: Any, key: str, p: dict[str, Any]) -> Any:
    """One value of parameter `key` from optuna's `trial`, as wandb would draw it."""
    if "value" in p:
        return p["value"]
    if "values" in p:
        return trial.suggest_categorical(key, p["values"])
    distribution = p.get("distribution")
    if distribution is None:
        ints = isinstance(p["min"], int) and isinstance(p["max"], int)
        distribution = "int_uniform" if ints else "uniform"
    lo, hi = p["min"], p["max"]
    if distribution == "int_uniform":
        return trial.suggest_int(key, int(lo), int(hi))
    if distribution == "uniform":
        return trial.suggest_float(key, float(lo), float(hi))
    if distribution == "q_uniform":
        return trial.suggest_float(key, float(lo), float(hi), step=float(p.get("q", 1)))
    value = trial.suggest_float(key, float(lo), float(hi), log=True)  # log_uniform_values
    if distribution == "q_log_uniform_values":
        q = p.get("q", 1)
        return round(value / q) * q
    return value


def pruner(spec: Any, episodes: int) -> Any:
    """optuna's pruner for the sweep's `early_terminate` (none without it)."""
    import optuna

    stop = spec.raw.get("early_terminate")
    if not stop:
        return optuna.pruners.NopPruner()
    return optuna.pruners.HyperbandPruner(
        min_resource=int(stop.get("min_iter", 1)),
        max_resource=max(episodes, 1),
        reduction_factor=int(stop.get("eta", 3)),
    )


def _study(spec: Any, out: Path, seed: int, episodes: int) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=spec.name,
        storage=JournalStorage(JournalFileBackend(str(out / JOURNAL))),
        direction=spec.goal,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner(spec, episodes),
        load_if_exists=True,
    )


def _objective(spec: Any, base: Config, out: Path, workers: int) -> Any:
    """optuna's objective: one train-teacher run per trial, in its own run directory."""
    import optuna

    from l2t.commands.sweep import digest
    from l2t.commands.training import train_teacher
    from l2t.io import threads

    def objective(trial: optuna.Trial) -> float:
        params = {k: suggest(trial, k, p) for k, p in spec.parameters.items()}
        name = f"trial-{digest(params)}"  # named by its parameters: a retry resumes it
        trial.set_user_attr("trial", name)
        trial_dir = out / name
        if (trial_dir / "summary.json").exists():  # the same parameters ran to the end
            return float(json.loads((trial_dir / "summary.json").read_text())[spec.metric])
        cfg = varied(base, params)
        cfg.out, cfg.tracking = str(trial_dir), "wandb"
        cfg.resume = (trial_dir / "checkpoint.pt").exists()
        cfg.threads = base.threads or max(1, threads.cores() // workers)
        cfg.wandb.group, cfg.wandb.name = spec.name, name

        def report(episode: int, score: float) -> None:
            trial.report(score, episode)
            if trial.should_prune():
                raise optuna.TrialPruned(f"episode {episode}: selection score {score:.4f}")

        train_teacher(cfg, show_progress=False, on_episode=report)
        return float(json.loads((trial_dir / "summary.json").read_text())[spec.metric])

    return objective


def _work(spec: Any, base: dict[str, Any], out: str, trials: int, seed: int, workers: int) -> None:
    """One process's share of the trials, on the shared journal."""
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    cfg = from_dict(base)
    study = _study(spec, Path(out), seed, cfg.episodes)
    study.optimize(_objective(spec, cfg, Path(out), workers), n_trials=trials, catch=(Exception,))


def run(spec: Any, base: Config, out: Path, count: int, workers: int, seed: int) -> list[dict]:
    """Run the study up to `count` finished trials (pruned ones count); one row per trial."""
    from optuna.trial import TrialState

    study = _study(spec, out, seed, base.episodes)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)  # cut off: the sweep holds the lock
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})  # it resumes
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    left = count - len(study.get_trials(deepcopy=False, states=done))
    print(f"sweep {spec.name} (optuna TPE): {count} trials, {count - max(left, 0)} already done")
    if left > 0:
        shares = [left // workers + (i < left % workers) for i in range(workers)]
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            jobs = [
                pool.submit(_work, spec, base.to_dict(), str(out), n, seed + i, workers)
                for i, n in enumerate(shares)
                if n
            ]
            for job in jobs:
                job.result()
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    rows = []
    for trial in trials:
        if trial.state == TrialState.RUNNING or trial.number in retried:
            continue
        row: dict[str, Any] = {"trial": trial.user_attrs.get("trial", f"#{trial.number}")}
        row.update(
            {k: trial.params.get(k, spec.parameters[k].get("value")) for k in spec.parameters}
        )
        summary = out / row["trial"] / "summary.json"
        if trial.state == TrialState.COMPLETE and summary.exists():
            row.update(json.loads(summary.read_text()), status="done")
        elif trial.state == TrialState.PRUNED:
            row.update(status=f"pruned at episode {trial.last_step}")
        else:
            reason = str(trial.system_attrs.get("fail_reason", "")).splitlines()
            row.update(status=f"failed: {reason[0] if reason else 'no result'}")
        rows.append(row)
    return rows

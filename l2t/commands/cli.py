"""`l2t <command> [--config FILE] [key=value ...]`; no arguments runs the default job."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from l2t.config import (
    Config,
    ConfigError,
    describe_keys,
    did_you_mean,
    from_dict,
    load_config,
    migrate,
    parse_overrides,
    read_yaml,
)
from l2t.estimators import Diverged
from l2t.io import run_lock, stopping

LATEST = Path("runs/latest")


def _fresh_run_dir(cfg: Config) -> None:
    """Without a chosen `out`, every `train-teacher` gets a new `runs/train-DATE-TIME` and
    `runs/latest` points at it, so the default job can be run again; `resume=true` without
    `out` continues `runs/latest`."""
    if cfg.resume:
        if not LATEST.is_dir():
            raise ConfigError(f"resume=true without out=DIR continues {LATEST}, which is not there")
        cfg.out = str(LATEST.parent / os.readlink(LATEST))
        return
    if LATEST.exists() and not LATEST.is_symlink():  # before the run, not after it
        raise ConfigError(
            f"{LATEST} is a {'directory' if LATEST.is_dir() else 'file'}, where train-teacher "
            "keeps a link to its latest run; move it, or pass out=DIR"
        )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out, n = LATEST.parent / f"train-{stamp}", 1
    while out.exists():
        n += 1
        out = LATEST.parent / f"train-{stamp}-{n}"
    cfg.out = str(out)


def _link_latest(run_dir: Path) -> None:
    """Point `runs/latest` at `run_dir` (replacing the link atomically)."""
    tmp = LATEST.with_name(".latest.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(run_dir.name, tmp)
    os.replace(tmp, LATEST)


LINE = 600  # the longest error line: a user's input may be any size


def _bounded(text: str) -> str:
    """One line of at most LINE characters, its middle left out if it is longer."""
    text = " ".join(text.split())
    if len(text) <= LINE:
        return text
    cut = len(text) - LINE + 40
    return f"{text[: LINE - 140]} ... ({cut} characters left out) ... {text[-100:]}"


class Failed(Exception):
    """A command that ran to its end with some of its work failed (one line, exit 1)."""


class Stopped(Exception):
    """A run stopped by Ctrl-C or SIGTERM; the message says how to continue it."""


def _how_to_resume(run_dir: Path) -> str:
    """What a stopped train-teacher left, in one line."""
    if not (run_dir / "checkpoint.pt").is_file():
        return f"no checkpoint of {run_dir} was written yet, so there is nothing to resume"
    from l2t.io.checkpoint import load_checkpoint

    saved = load_checkpoint(run_dir / "checkpoint.pt")
    if not isinstance(saved, dict):
        return f"{run_dir}/checkpoint.pt is not a checkpoint l2t wrote"
    where = f"episode {saved.get('episode')}, update {saved.get('update', 0)}"
    return (
        f"{run_dir} is saved at {where}; `l2t train-teacher out={run_dir} resume=true` continues it"
    )


def _train_teacher(args: argparse.Namespace) -> None:
    from l2t.commands.training import train_teacher

    cfg = load_config(args.config, args.overrides)
    fresh = cfg.out == Config().out and not _gave_out(args.overrides)
    if fresh and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("a run over several processes needs out=DIR, the same for all of them")
    if fresh:
        _fresh_run_dir(cfg)
    saved = Path(cfg.out) / "config.yaml"
    if cfg.resume and not args.config and saved.is_file():  # the run's config, then overrides
        overrides = {**parse_overrides(args.overrides), "out": cfg.out, "resume": "true"}
        cfg = from_dict(overrides, from_dict(migrate(read_yaml(saved, "the run's config"))))
    try:  # runs/latest points at a fresh run from its start
        result = train_teacher(cfg, started=_link_latest if fresh else None)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: say how to go on
        raise Stopped(_how_to_resume(Path(cfg.out))) from None
    if result is None:  # a process other than rank 0: rank 0 reports
        return
    print(f"run directory: {result.run_dir}")
    kept = "the untrained one" if result.best_episode < 0 else f"episode {result.best_episode}"
    print(f"teacher kept: {kept} (selection val acc {result.best_val_acc:.4f})")
    print(f"test accuracy, student taught by the teacher: {result.teacher_test_acc:.4f}")
    print(f"test accuracy, cross-entropy student:         {result.ce_test_acc:.4f}")
    print(f"test accuracy, fixed base-loss student:       {result.base_loss_test_acc:.4f}")
    diverged = result.meta_training_diverged_steps, result.teacher_diverged_steps
    note = "" if diverged == (0, 0) else "  <- the teacher's loss broke students; see metrics.jsonl"
    print(
        f"diverged teacher steps (retaken under the base loss): {diverged[0]} in meta-training, "
        f"{diverged[1]} in the final student{note}"
    )


def _train_model(args: argparse.Namespace) -> None:
    from l2t.methods.model_training import train_model

    picked, overrides = _pop(args.overrides, ("with_val",))
    overrides = overrides if _gave_out(overrides) else ["out=runs/model", *overrides]
    with_val = _flag(picked.get("with_val", "false"), "with_val")
    cfg = load_config(args.config, overrides)
    with run_lock.locked(Path(cfg.out), "train-model"):  # one writer per directory
        summary = train_model(cfg, with_val)
    print(f"model: {cfg.out}/model.pt ({cfg.student} on {cfg.dataset})")
    print(f"test accuracy {summary['test_acc']:.4f}; use it with distill.model={cfg.out}/model.pt")


def _flag(value: str, name: str) -> bool:
    if value not in ("true", "false"):
        raise ConfigError(f"{name} must be true or false; got {value!r}")
    return value == "true"


def _pop(overrides: list[str], names: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """Split command arguments (`teacher=RUN_DIR`, `mode=...`) from config overrides."""
    picked, rest = {}, []
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep and key in names:
            picked[key] = value
        else:
            rest.append(item)
    return picked, rest


def _config_for(args: argparse.Namespace, run_dir: str | None, rest: list[str]) -> Config:
    """The teacher run's config (if any), then --config, then the overrides."""
    from l2t.commands.applying import run_config

    if run_dir and not args.config:
        return run_config(run_dir, parse_overrides(rest))
    return load_config(args.config, rest)


def _gave_out(overrides: list[str]) -> bool:
    """Whether the user chose `out=`; else each command writes to its own default place."""
    return any(item.startswith("out=") for item in overrides)


def _output_dir(chosen: str | None, default: str, overwrite: str | None, marker: str) -> str:
    """Where `teach`/`compare` write: never over earlier results without `overwrite=true`.
    A chosen `out=` that holds results is refused; the default place gets a new numbered
    directory beside it instead."""
    if overwrite not in (None, "true", "false"):
        raise ConfigError(f"overwrite must be true or false; got {overwrite!r}")
    if overwrite == "true":
        there = Path(chosen or default)
        if (there / marker).exists():
            held = sorted(p.name for p in there.iterdir() if not p.name.startswith("."))
            print(
                f"note: overwrite=true: the results in '{there}' ({', '.join(held[:6])}"
                f"{', ...' if len(held) > 6 else ''}) are replaced",
                file=sys.stderr,
            )
        return str(there)
    if chosen is not None:
        if (Path(chosen) / marker).exists():
            raise ConfigError(
                f"'{chosen}' already holds results ({marker}); pass overwrite=true or another out="
            )
        return chosen
    out, n = default, 1
    while (Path(out) / marker).exists():
        n += 1
        out = f"{default}-{n}"
    return out


def _teach(args: argparse.Namespace) -> None:
    from l2t.commands.applying import MODES, run_dir_of, teach

    picked, rest = _pop(args.overrides, ("teacher", "mode", "overwrite"))
    if "teacher" not in picked:
        raise ConfigError("teach needs teacher=RUN_DIR (a directory written by train-teacher)")
    mode = picked.get("mode", "online")
    if mode not in MODES:  # before anything is loaded
        raise ConfigError(
            f"mode must be one of {', '.join(MODES)}; got '{mode}'" + did_you_mean(mode, MODES)
        )
    cfg = _config_for(args, picked["teacher"], rest)
    default_out = f"{run_dir_of(picked['teacher'])}/teach-{mode}-{cfg.dataset}-{cfg.student}"
    chosen = cfg.out if _gave_out(rest) else None
    out = _output_dir(chosen, default_out, picked.get("overwrite"), "summary.json")
    with run_lock.locked(Path(out), "teach"):
        summary = teach(picked["teacher"], mode, cfg, out)
    print(
        f"{out}: test accuracy {summary['test_acc']:.4f} ({mode} teacher, "
        f"{cfg.dataset}/{cfg.student}, seed {cfg.seed})"
    )


def _compare(args: argparse.Namespace) -> None:
    from l2t.commands.applying import run_dir_of
    from l2t.commands.compare import compare, default_methods_for, parse_methods

    names = ("teacher", "seeds", "methods", "overwrite", "workers")
    picked, rest = _pop(args.overrides, names)
    run_dir = picked.get("teacher")
    cfg = _config_for(args, run_dir, rest)
    default_methods = ",".join(default_methods_for(cfg, run_dir is not None))
    methods = parse_methods(picked.get("methods", default_methods), cfg, run_dir is not None)
    counts = {}
    for key, default in (("seeds", "5"), ("workers", "1")):
        try:
            counts[key] = int(picked.get(key, default))
        except ValueError:
            raise ConfigError(f"{key} must be an integer; got {picked[key]!r}") from None
    if "seeds" not in picked and any(a.startswith("seed=") for a in rest):  # a one-letter trap
        print(
            f"note: seed= sets the run's seed (its data split, noise and students); the number "
            f"of students per method is seeds= ({counts['seeds']} here)",
            file=sys.stderr,
        )
    where = run_dir_of(run_dir) if run_dir else None  # a teacher.pt: the directory it lies in
    default_out = f"{where}/compare-{cfg.dataset}-{cfg.student}" if where else "runs/compare"
    chosen = cfg.out if _gave_out(rest) else None
    out = _output_dir(chosen, default_out, picked.get("overwrite"), "results.md")
    with run_lock.locked(Path(out), "compare"):
        compare(cfg, methods, counts["seeds"], out, run_dir, counts["workers"])


def _sweep(args: argparse.Namespace) -> None:
    from l2t.commands.sweep import sweep

    base = load_config(args.config, args.overrides)
    out = base.out if _gave_out(args.overrides) else None
    rows = sweep(args.file, base, args.count, args.workers, args.seed, out)
    failed = [r for r in rows or [] if str(r.get("status", "")).startswith("failed")]
    if failed:
        raise Failed(
            f"sweep: {len(failed)} of {len(rows or [])} trials failed (sweep_results.md says why)"
        )


def _bench(args: argparse.Namespace) -> None:
    from l2t.commands.bench import bench_record, run_bench
    from l2t.io.checkpoint import atomic_write_json

    cfg = load_config(args.config, args.overrides)
    out = Path(cfg.out) if _gave_out(args.overrides) else None
    if out is not None and (out.suffix != ".json" or out.is_dir()):
        raise ConfigError(f"bench writes its rows to a JSON file: out=FILE.json; got '{out}'")
    if not args.budget > 0:
        raise ConfigError(f"--budget must be > 0 seconds; got {args.budget}")
    rows = run_bench(cfg, args.budget)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(bench_record(cfg, rows, ["l2t", "bench", *sys.argv[2:]]), out)
        print(f"rows written to {out}")


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], None], str]] = {
    "train-teacher": (_train_teacher, "meta-train a teacher; write a run directory"),
    "train-model": (
        _train_model,
        "train a plain model with cross-entropy, to distill from (distill.model=PATH)",
    ),
    "teach": (
        _teach,
        "train a new student with a saved teacher: teacher=RUN_DIR mode=online|schedule",
    ),
    "compare": (
        _compare,
        "methods x seeds on the same data and budget: teacher=RUN_DIR seeds=5 methods=... "
        "workers=1",
    ),
    "sweep": (_sweep, "a wandb sweep: on a W&B server if reachable, else locally"),
    "bench": (
        _bench,
        "cost per student step of each way to train, unroll memory, 1 vs 2 processes at once; "
        "out=FILE.json also writes the rows",
    ),
}


USAGE = "l2t <command> [--config FILE] [key=value ...]"


def _command_keys(name: str) -> str:
    """The keys a command takes besides the config's (`teacher=`, `seeds=`, ...)."""
    if name == "teach":
        keys = [
            ("teacher=PATH", "a run directory of train-teacher, or its teacher.pt (required)"),
            ("mode=online|schedule", "the teacher reacting to the student, or its recorded "
             "loss schedule replayed (default online)"),
            ("out=DIR", "where to write (default: beside the teacher)"),
            ("overwrite=true", "write over earlier results in out"),
        ]  # fmt: skip
    elif name == "compare":
        from l2t.commands.compare import METHODS

        keys = [
            ("teacher=PATH", "a run directory or teacher.pt: enables the teacher_* methods"),
            ("seeds=5", "paired students per method (10 for a claim; under 5 every claim is weak)"),
            ("methods=a,b,...", f"default: the fixed baselines (and, with a teacher, the tuned "
             f"ones and the teacher's); any of {', '.join(METHODS)}"),
            ("workers=1", "processes training students at once, each with its share of cores"),
            ("out=DIR", "where to write (default: beside the teacher, or runs/compare)"),
            ("overwrite=true", "write over earlier results in out"),
        ]  # fmt: skip
    elif name == "train-model":
        keys = [
            ("with_val=true", "train on the trusted val split too (with an unlabeled pool: the "
             "labeled part and val); its val accuracy is then not held out"),
        ]  # fmt: skip
    else:
        return ""
    lines = [f"{name} keys:"] + [f"  {key}\n      {text}" for key, text in keys]
    return "\n".join(lines) + "\n\n"


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of one command; options and key=value overrides may come in any order."""
    p = argparse.ArgumentParser(
        prog=f"l2t {name}",
        description=COMMANDS[name][1],
        epilog=_command_keys(name) + keys_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if name == "sweep":
        p.add_argument("file", help="a wandb sweep YAML whose parameters are config keys")
        p.add_argument("--count", type=int, help="trials to run (random: default 10)")
        p.add_argument("--workers", type=int, default=1, help="trials in parallel (local)")
        p.add_argument("--seed", type=int, default=0, help="seed of random search (local)")
    if name == "bench":
        p.add_argument(
            "--budget", type=float, default=3.0, help="seconds timed per row (more: less spread)"
        )
    p.add_argument("--config", help="YAML config file (see configs/)")
    p.add_argument(
        "overrides", nargs="*", help="dotted config overrides, e.g. steps=500 teacher.update=fused"
    )
    return p


def keys_help() -> str:
    """Every config key: type, default, allowed values and its comment in l2t/config/__init__.py."""
    lines = ["config keys (key=value; defaults in l2t/config/__init__.py):"]
    for doc in describe_keys():
        allowed = f"; one of {'|'.join(doc.choices)}" if doc.choices else ""
        lines.append(f"  {doc.key} ({doc.kind}, default {doc.default!r}{allowed})")
        lines.append(f"      {doc.comment}")
    return "\n".join(lines)


def _top_level_help() -> str:
    lines = [
        f"usage: {USAGE}",
        "",
        "Learning to teach with dynamic loss networks.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<14} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += [
        "",
        "No arguments runs `l2t train-teacher` on the embedded default (MNIST-1D, MLP).",
        "`l2t COMMAND --help` lists every config key with its default and meaning.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        argv = ["train-teacher"]
    if argv[0] in ("-h", "--help"):
        print(_top_level_help())
        return 0
    if argv[0] not in COMMANDS:
        print(
            f"l2t: error: unknown command '{argv[0]}'{did_you_mean(argv[0], COMMANDS)}; "
            f"allowed: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    args = command_parser(argv[0]).parse_intermixed_args(argv[1:])
    handler = COMMANDS[argv[0]][0]
    try:
        with stopping.handled():
            handler(args)
    except ConfigError as exc:
        print(f"l2t: error: {_bounded(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a write error: say what and where, keep the rest
        where = f" ({exc.filename})" if exc.filename else ""
        print(
            f"l2t: error: {argv[0]} could not write{where}: {exc.strerror or exc}; every file "
            "written before is intact (a train-teacher run resumes from its last checkpoint "
            "with resume=true)",
            file=sys.stderr,
        )
        return 1
    except (Diverged, Failed) as exc:
        print(f"l2t: {'stopped: ' if isinstance(exc, Diverged) else ''}{exc}", file=sys.stderr)
        return 1
    except Stopped as exc:
        if os.environ.get("RANK", "0") == "0":  # one line for a run over several processes
            print(f"l2t: stopped; {exc}", file=sys.stderr)
        return stopping.exit_code()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (a scheduler's pre-emption)
        print(f"l2t: stopped; {argv[0]} keeps no partial results; run it again", file=sys.stderr)
        return stopping.exit_code()
    return 0


if __name__ == "__main__":
    sys.exit(main())

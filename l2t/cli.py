"""`l2t <command> [--config FILE] [key=value ...]`; no arguments runs the default job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from l2t.config import ConfigError, load_config


def _train_teacher(args: argparse.Namespace) -> None:
    from l2t.training import train_teacher

    cfg = load_config(args.config, args.overrides)
    result = train_teacher(cfg)
    print(f"run directory: {result.run_dir}")
    print(f"best meta-training episode: {result.best_episode} (val acc {result.best_val_acc:.4f})")
    print(f"test accuracy, student taught by the teacher: {result.teacher_test_acc:.4f}")
    print(f"test accuracy, cross-entropy student:         {result.ce_test_acc:.4f}")
    print(f"test accuracy, fixed base-loss student:       {result.base_loss_test_acc:.4f}")


def _bench(args: argparse.Namespace) -> None:
    from l2t.bench import run_bench

    run_bench(load_config(args.config, args.overrides))


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], None], str]] = {
    "train-teacher": (_train_teacher, "meta-train a teacher; write a run directory"),
    "bench": (_bench, "time a plain step, a schedule step and a meta-training step"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l2t", description="Learning to teach with dynamic loss networks."
    )
    sub = parser.add_subparsers(dest="command")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", help="YAML config file (see configs/)")
        p.add_argument(
            "overrides",
            nargs="*",
            help="dotted config overrides, e.g. steps=500 teacher.update=fused",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        argv = ["train-teacher"]
    args = build_parser().parse_args(argv)
    handler = COMMANDS[args.command][0]
    try:
        handler(args)
    except ConfigError as exc:
        print(f"l2t: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "l2t: interrupted; the last checkpoint is kept (resume=true continues)", file=sys.stderr
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`l2t compare` (docs/design.md §5): `run.py` trains methods x seeds on paired students,
`table.py` writes the paired statistics, and each other file here registers rows
(`method.py` `Method`): fixed losses, tuned rates, distillation, reweighting, the teacher.
A new row is one file imported below."""

# the rows' order, which tables, defaults and `methods=`'s help follow
# isort: off
from l2t.commands.compare import fixed  # noqa: F401
from l2t.commands.compare import tuned  # noqa: F401
from l2t.commands.compare import distilled  # noqa: F401
from l2t.commands.compare import reweighted  # noqa: F401
from l2t.commands.compare import pool  # noqa: F401
from l2t.commands.compare import slam  # noqa: F401
from l2t.commands.compare import importance  # noqa: F401
from l2t.commands.compare import trust  # noqa: F401
from l2t.commands.compare import correction  # noqa: F401
from l2t.commands.compare import margin_drop  # noqa: F401
from l2t.commands.compare import self_training  # noqa: F401
from l2t.commands.compare import taught  # noqa: F401
from l2t.commands.compare import oracle  # noqa: F401

# isort: on
from l2t.commands.compare.fixed import early_stopped
from l2t.commands.compare.method import Method, Setting, check_methods
from l2t.commands.compare.run import compare
from l2t.commands.compare.table import (
    WIN_T,
    MethodResult,
    best_baseline,
    critical_t,
    format_paired,
    paired_stats,
    results_csv,
    results_table,
    win_rule,
)
from l2t.config import Config

METHODS = tuple(Method.registry)  # every row, in the order of the imports above
BASELINES = tuple(m for m, row in Method.registry.items() if row.baseline)


def default_methods_for(cfg: Config, have_teacher: bool) -> tuple[str, ...]:
    """What `compare` runs without `methods=`: the fixed baselines, the robust ones under
    label noise, the distillation ones with a model, and (with a teacher) the tuned
    baselines and the teacher."""
    return tuple(m for m, row in Method.registry.items() if row.by_default(m, cfg, have_teacher))


def parse_methods(text: str, cfg: Config, have_teacher: bool) -> list[str]:
    """`methods=a,b,...` as a list, each row known and trainable here (one line if not)."""
    methods = [m.strip() for m in text.split(",") if m.strip()]
    check_methods(methods, cfg, have_teacher)
    return methods


__all__ = [
    "BASELINES",
    "METHODS",
    "WIN_T",
    "Method",
    "MethodResult",
    "Setting",
    "best_baseline",
    "compare",
    "critical_t",
    "default_methods_for",
    "early_stopped",
    "format_paired",
    "paired_stats",
    "parse_methods",
    "results_csv",
    "results_table",
    "win_rule",
]

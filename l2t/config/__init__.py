"""Run configuration: nested dataclasses, YAML files and dotted `key=value` overrides.

Every knob has a default here, so `l2t train-teacher` with no arguments is a complete run.
Validation is strict (unknown keys and wrong types are errors) because a silently ignored
typo in a sweep wastes hours of compute.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import difflib
import functools
import io
import math
import reprlib
import tokenize
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from l2t.engine.seeds import MAX_RUN_SEED
from l2t.engine.student_state import AUTOCAST
from l2t.losses.composite import POINTS
from l2t.losses.dln import PAIR_LOSSES
from l2t.losses.families import FAMILIES
from l2t.losses.fixed import FIXED_LOSSES


class ConfigError(ValueError):
    """A user mistake in a config file or override; the CLI prints it as one line, exit 2."""


def _choice(default: str, *choices: str) -> Any:
    return field(default=default, metadata={"choices": choices})


@dataclass
class OptimConfig:
    lr: float = 0.1  # student SGD learning rate (the authors' default)
    momentum: float = 0.0  # SGD momentum; its buffer is carried through the unroll
    weight_decay: float = 0.0  # L2 weight decay inside the SGD step
    batch_size: int = 25  # training samples per student step (the authors' default)
    cosine: bool = False  # the learning rate annealed to 0 along a cosine over the budget


@dataclass
class LossNetConfig:
    hidden: int = 40  # width of the DLN's hidden layers (paper: 40)
    layers: int = 4  # number of hidden layers (paper: 4)
    family: str = _choice("dln", *FAMILIES)  # a loss network, 4 loss coefficients, or the
    # composite of the fixed losses (l2t/losses/families.py)
    base: str = _choice("auto", "auto", *POINTS)  # composite: the point the teacher starts
    # at (l2t/losses/composite.py POINTS; auto: the best on validation)
    ranges: str = "log_scale=0.5,ce=0.5,rce=0.5,smoothing=0.1,reweight=2"  # composite: how
    # far the teacher moves each control from the base point (l2t/losses/composite.py)
    init: str = _choice("pairwise_logistic", *PAIR_LOSSES, "random")  # the pair loss the DLN
    # starts as (l2t/losses/dln.py PAIR_LOSSES), or random
    init_steps: int = 1000  # Adam steps fitting the DLN to its initial loss


@dataclass
class TeacherConfig:
    agent: str = _choice(
        "lstm", "lstm", "mlp", "reinforce", "fixed", "control"
    )  # the teacher (agents/; control: the composite family's)
    update: str = _choice("fused", "fused", "three_stage")  # learning online: 1 or 2 unrolls
    param: str = _choice("offset", "offset", "increment")  # phi = phi0 + beta*tanh | phi -= ...
    alpha: float = 1e-3  # step size of `increment` updates: phi <- phi - alpha*tanh(out)
    beta: float = 0.02  # bound of `offset` updates: phi = phi0 + beta*tanh(out)
    lr: float = 1e-3  # Adam learning rate of the teacher's own parameters
    hidden: int = 20  # LSTM hidden size (coordinate-wise, shared by all DLN weights)
    bptt: int = 1  # teacher steps per truncated backprop through the LSTM state
    fixed_loss: str = _choice("ce", *(f for f in FIXED_LOSSES if f != "base"))  # agent=fixed:
    # the loss it keeps (l2t/losses/fixed.py FIXED_LOSSES)
    init_std: float = 0.3  # agent=reinforce: initial std of the Gaussian policy (action units)
    observe: str = _choice(
        "state", "state", "grad"
    )  # lstm: student state only (first order), or also dL_val/dphi (the paper's; 2nd order)
    scale: float = 0.0  # lstm: log-range of a learned global loss scale (0: none; 2.3: 0.1-10x)
    mix_range: float = 0.0  # lstm, distill.model: the teacher sets the soft labels' mix,
    # sigmoid(logit(distill.mix) + mix_range * tanh(.)) (0: distill.mix fixed; 3: 0.05-0.95)


@dataclass
class EstimatorConfig:
    kind: str = _choice(
        "pes", "pes", "greedy", "tbptt", "es"
    )  # teacher.agent=lstm|mlp: outer-gradient estimator (l2t/estimators/; docs/design.md §3)
    horizon: int = 10  # tbptt, pes: teacher steps per truncation (x unroll.steps student steps)
    population: int = 0  # students per teacher update: greedy, tbptt average this many
    # lifetimes; pes, es run this many antithetic pairs (0: 1 for greedy, tbptt; 4 for pes, es)
    sigma: float = 0.01  # pes, es: std of the perturbation of the teacher's parameters
    sigma_controls: str = ""  # pes, es with teacher.agent=control: a sigma per control for
    # the head rows that set it, e.g. "log_scale=0.05,reweight=0.01" (others: sigma)
    vmap: bool = False  # pes, es, greedy: train the population's students together (torch.func)
    objective: str = _choice("val_loss", "val_loss", "val_acc")  # meta-objective (acc: pes, es)
    objective_from: float = 0.5  # pes, es: training progress from which val metrics count


@dataclass
class UnrollConfig:
    steps: int = 15  # K: differentiable student steps per teacher step
    backend: str = _choice("func", "func", "higher")  # second-order unrolls: torch.func or higher


@dataclass
class DistillConfig:
    model: str = ""  # a model.pt of `l2t train-model` whose soft labels students learn from
    temperature: float = 4.0  # T: the model's probabilities are softmax(logits / T)
    mix: float = 0.5  # weight of the soft labels: KD's a, the DLN's label slots' mix


@dataclass
class WandbConfig:
    project: str = "l2t"  # wandb project
    group: str = ""  # wandb group ("" = none)
    name: str = ""  # wandb run name ("" = the run directory's name)


@dataclass
class Config:
    dataset: str = _choice(
        "mnist1d", "mnist1d", "digits", "cifar10", "cifar100", "mnist", "fashion-mnist"
    )  # which data (docs/design.md §2)
    data_dir: str = ""  # directory with on-disk datasets (cifar/mnist formats)
    train_size: int = 0  # training samples kept (0 = all that remain after the val split)
    val_size: int = 1000  # samples split off the training set for the teacher's validation
    labeled: int = 0  # with `unlabeled`: training samples that keep their labels (0: all)
    unlabeled: int = 0  # an unlabeled pool of this many samples, labeled by distill.model's
    # predictions (its true labels hidden; MNIST-1D generates more samples, docs/design.md §6)
    labeled_batch: int = 0  # with a pool: samples of each batch from the labeled part, the
    # rest from the pool (0: drawn uniformly over labeled + pool)
    val_batch: int = 500  # validation samples per teacher step (0 = the whole val split)
    label_noise: float = 0.0  # fraction of training labels changed (val and test stay clean)
    label_noise_kind: str = _choice(
        "symmetric", "symmetric", "pairflip"
    )  # wrong label: any other class uniformly, or c -> c+1 mod C
    augment: str = _choice("auto", "auto", "on", "off")  # training images cropped (padding
    # 4) and flipped, drawn from each batch's seed (auto: on for CIFAR, as its literature)
    student: str = _choice(
        "mlp", "mlp", "cnn1d", "lenet", "resnet8", "resnet20", "resnet32", "resnet8_wide"
    )  # student architecture
    students_mix: str = ""  # e.g. mlp,cnn1d: one teacher for several architectures (population
    # member i and selection student i train the (i mod n)-th; `student` for the final one)
    steps: int = 3000  # student updates per episode (the student's whole budget)
    episodes: int = 3  # meta-training episodes: each student of the population lives a lifetime
    select_students: int = 10  # frozen held-out students scoring each teacher (0: its episode)
    select_level: float = 0.05  # keep a trained teacher only if a one-sided paired t-test on
    # the selection students beats the untrained one at p below this (1: any higher mean)
    eval_every: int = 150  # student steps between evaluations drawn in the curves
    seed: int = 0  # seeds data split, students, batches and the teacher (0 .. 2**20 - 1)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    tf32: bool = True  # on CUDA, matrix products and convolutions in TF32 (l2t/io/device.py)
    autocast: str = _choice("off", *AUTOCAST)  # the students' first-order SGD steps in mixed
    # precision: forward in bf16/fp16 (fp16 with a dynamic loss scale), loss and weights in fp32
    out: str = "runs/default"  # run directory (CLI train-teacher: a new runs/train-DATE-TIME)
    tracking: str = _choice("none", "none", "wandb")  # wandb is optional and off by default
    observe_loss_state: bool = True  # env observations include validation-gradient statistics
    resume: bool = False  # continue from out/checkpoint.pt
    checkpoint_every: int = 5  # teacher updates between checkpoints inside an episode (0: none)
    max_divergences: int = 20  # teacher steps in a row that break students before a run stops
    progress: bool = True  # progress bars for every long phase (only ever on a terminal)
    threads: int = 0  # compute threads; 0: a share of the cores among running l2t processes
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossNetConfig = field(default_factory=LossNetConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)
    unroll: UnrollConfig = field(default_factory=UnrollConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def as_saved(self) -> dict[str, Any]:
        """The config a run writes into its files: what the run is, not how this process
        started it (`resume` false), so a resumed run's files equal an unstopped one's."""
        return {**self.to_dict(), "resume": False}


def _coerce(key: str, value: Any, kind: type) -> Any:
    """Convert a YAML/CLI value to the field's type, or explain what was expected."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"config key '{key}' expects {kind.__name__}, got {_shown(value)}")


def _shown(value: Any) -> str:
    """`value` as an error line shows it: short, whatever its size."""
    short = reprlib.Repr()
    short.maxstring = short.maxother = 60
    short.maxlist, short.maxdict = 6, 4
    return short.repr(value)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def allowed_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """All dotted keys a config accepts, for error messages and sweep validation."""
    keys = []
    hints = _field_types(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            keys += allowed_keys(kind, f"{prefix}{f.name}.")  # type: ignore[arg-type]
        else:
            keys.append(prefix + f.name)
    return keys


# keys that moved to the `estimator` section (issue 22): refused with the new name, and
# renamed in the configs of runs saved before (`migrate`)
MOVED = {
    "teacher.estimator": "estimator.kind",
    "teacher.horizon": "estimator.horizon",
    "teacher.students": "estimator.population",
    "teacher.population": "estimator.population",
    "teacher.sigma": "estimator.sigma",
    "teacher.vmap": "estimator.vmap",
    "teacher.objective": "estimator.objective",
    "teacher.objective_from": "estimator.objective_from",
}


def migrate(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved run's config (config.yaml, a checkpoint's or teacher.pt's) with the keys of
    older versions renamed: `teacher.students` (greedy, tbptt) and `teacher.population` (pes,
    es) become the one `estimator.population` of the run's kind."""
    if not isinstance(saved.get("teacher"), dict | None) or not isinstance(
        saved.get("estimator"), dict | None
    ):
        return saved  # not of any version: from_dict says which section is wrong
    teacher = dict(saved.get("teacher") or {})
    if not any(key.split(".")[1] in teacher for key in MOVED):
        return saved
    estimator = dict(saved.get("estimator") or {})
    kind = teacher.get("estimator", EstimatorConfig.kind)
    size = teacher.pop("population", None), teacher.pop("students", None)
    estimator["population"] = size[0] if kind in ("pes", "es") else size[1]
    if estimator["population"] is None:
        del estimator["population"]
    for old, new in MOVED.items():
        if old.split(".")[1] in teacher:
            estimator[new.split(".")[1]] = teacher.pop(old.split(".")[1])
    return {**saved, "teacher": teacher, "estimator": estimator}


def _set(cfg: Any, key: str, value: Any) -> None:
    if key in MOVED:
        raise ConfigError(f"config key '{key}' is now '{MOVED[key]}'")
    obj: Any = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        sub = getattr(obj, part, None)
        if not dataclasses.is_dataclass(sub):
            raise _unknown(key)
        obj = sub
    name = parts[-1]
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if name not in fields:
        raise _unknown(key)
    kind = _field_types(type(obj))[name]
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' is a section; set its keys ({key}.NAME=...)")
        for sub_key, sub_value in value.items():
            _set(cfg, f"{key}.{sub_key}", sub_value)
        return
    if isinstance(kind, types.UnionType):
        raise TypeError(f"unsupported config field type {kind}")
    value = _coerce(key, value, kind)
    choices = fields[name].metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(
            f"config key '{key}' must be one of {', '.join(choices)}; got {value!r}"
            + did_you_mean(str(value), choices)
        )
    setattr(obj, name, value)


def did_you_mean(word: str, allowed: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for the closest of `allowed` to a mistyped `word`, or ""."""
    close = difflib.get_close_matches(word, list(allowed), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unknown(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, allowed_keys(), n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return ConfigError(f"unknown config key '{key}'; {hint}`l2t COMMAND --help` lists every key")


@dataclass
class KeyDoc:
    key: str
    kind: str
    default: Any
    choices: tuple[str, ...]
    comment: str


def describe_keys(cls: type = Config, prefix: str = "") -> list[KeyDoc]:
    """Every key with its type, default, allowed values and the comment beside its field in
    this file: the `--help` text is generated from the dataclasses, so it cannot drift."""
    comments = _field_comments()
    hints = _field_types(cls)
    docs = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            docs += describe_keys(kind, f"{prefix}{f.name}.")  # type: ignore[arg-type]
            continue
        default = f.default_factory() if callable(f.default_factory) else f.default
        comment = comments.get((cls.__name__, f.name), "")
        docs.append(
            KeyDoc(prefix + f.name, kind.__name__, default, f.metadata.get("choices", ()), comment)
        )
    return docs


@functools.cache
def _field_comments() -> dict[tuple[str, str], str]:
    """(class, field) -> the `# comment` that ends the field's definition in this file, with
    the comment-only lines right below it (its continuation)."""
    source = Path(__file__).read_text()
    lines = source.splitlines()
    by_line = {
        token.start[0]: token.string.lstrip("# ").strip()
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    comments = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    end = item.end_lineno or item.lineno
                    text = by_line.get(end, "")
                    while text and end < len(lines) and lines[end].lstrip().startswith("#"):
                        end += 1
                        text += " " + by_line[end]
                    comments[(node.name, item.target.id)] = text
    return comments


def from_dict(data: dict[str, Any], base: Config | None = None) -> Config:
    """Build a validated Config from a (possibly partial, nested) dict."""
    cfg = base if base is not None else Config()
    for key, value in data.items():
        _set(cfg, str(key), value)
    _check_ranges(cfg)
    return cfg


def varied(cfg: Config, changes: dict[str, Any]) -> Config:
    """A new config: `cfg` with `changes` (nested as in a YAML file) set and checked; `cfg`
    itself is unchanged. The one way a command derives a variant of its run."""
    return from_dict(changes, copy.deepcopy(cfg))


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """`["a.b=1", "c=x"]` -> `{"a.b": "1", "c": "x"}`; values stay strings until coerced."""
    parsed = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form key=value (e.g. steps=500)")
        parsed[key.strip()] = value.strip()
    return parsed


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML without what a config never needs: aliases (a few hundred bytes of nested
    aliases expand to gigabytes) and duplicate keys (the last would silently win)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed", mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                problem = f"the key {str(key)[:40]!r} is given twice"
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path, what: str) -> Any:
    """The YAML document in `path`, or one line saying where it is broken."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} '{path}' is a directory, not a YAML file")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{what} '{path}' is not a regular file (a device or a pipe)")
    if not path.exists():
        raise ConfigError(f"{what} '{path}' does not exist")
    try:
        return yaml.load(path.read_text(), Loader=_StrictLoader)  # a SafeLoader, stricter
    except PermissionError:
        raise ConfigError(f"{what} '{path}' cannot be read (permission denied)") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{what} '{path}' is not valid YAML{where}: {problem}") from None


CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # l2t/configs (package data)


def config_path(path: str | Path) -> Path:
    """`path` as given if it exists; else the project's config of that name, so
    `configs/mnist1d_mlp.yaml` and `mnist1d_mlp` work from any directory."""
    given = Path(path)
    if given.exists() or given.is_absolute():
        return given
    name = given.name if given.suffix in (".yaml", ".yml") else f"{given.name}.yaml"
    packaged = CONFIGS / name
    return packaged if packaged.is_file() else given


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML file (a path, or the name of one of the project's configs),
    then the command-line overrides; validated."""
    cfg = Config()
    if path is not None:
        path = config_path(path)
        data = read_yaml(path, "config file") or {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file '{path}' must hold a mapping of keys to values")
        cfg = from_dict(data, cfg)
    return from_dict(dict(parse_overrides(overrides or [])), cfg)


def _floats(obj: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _floats(value, f"{prefix}{f.name}.")
        elif isinstance(value, float):
            yield f"{prefix}{f.name}", value


def _check_pool(cfg: Config) -> None:
    """The unlabeled pool's keys: sizes, and a batch that fits."""
    for key in ("labeled", "unlabeled", "labeled_batch"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"config key '{key}' must be >= 0; got {getattr(cfg, key)}")
    if cfg.unlabeled and not cfg.labeled:
        raise ConfigError("unlabeled=N needs labeled=M: the training samples that keep labels")
    if cfg.unlabeled and cfg.train_size:
        raise ConfigError("labeled= and unlabeled= set the training split: leave train_size=0")
    if cfg.labeled_batch and not cfg.unlabeled:
        raise ConfigError("labeled_batch splits a batch between labeled part and pool: unlabeled=N")
    if cfg.labeled_batch > cfg.optim.batch_size:
        raise ConfigError(
            f"labeled_batch={cfg.labeled_batch} exceeds optim.batch_size={cfg.optim.batch_size}"
        )


def _check_ranges(cfg: Config) -> None:
    for key, value in _floats(cfg):
        if not math.isfinite(value):
            raise ConfigError(f"config key '{key}' must be a finite number; got {value}")
    positive = {
        "steps": cfg.steps,
        "episodes": cfg.episodes,
        "eval_every": cfg.eval_every,
        "unroll.steps": cfg.unroll.steps,
        "optim.batch_size": cfg.optim.batch_size,
        "optim.lr": cfg.optim.lr,
        "teacher.lr": cfg.teacher.lr,
        "teacher.hidden": cfg.teacher.hidden,
        "teacher.bptt": cfg.teacher.bptt,
        "loss.hidden": cfg.loss.hidden,
        "loss.layers": cfg.loss.layers,
        "val_size": cfg.val_size,
        "max_divergences": cfg.max_divergences,
        "teacher.init_std": cfg.teacher.init_std,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"config key '{key}' must be > 0; got {value}")
    if not 0 <= cfg.seed < MAX_RUN_SEED:
        raise ConfigError(f"config key 'seed' must be in [0, {MAX_RUN_SEED}); got {cfg.seed}")
    for key, value in {"train_size": cfg.train_size, "val_batch": cfg.val_batch}.items():
        if value < 0:
            raise ConfigError(f"config key '{key}' must be >= 0 (0 = all); got {value}")
    _check_pool(cfg)
    for key, value in {
        "threads": cfg.threads,
        "checkpoint_every": cfg.checkpoint_every,
        "optim.weight_decay": cfg.optim.weight_decay,
        "loss.init_steps": cfg.loss.init_steps,
        "teacher.alpha": cfg.teacher.alpha,
        "teacher.beta": cfg.teacher.beta,
    }.items():
        if value < 0:
            raise ConfigError(f"config key '{key}' must be >= 0; got {value}")
    for key, value in {
        "optim.momentum": cfg.optim.momentum,
        "label_noise": cfg.label_noise,
        "estimator.objective_from": cfg.estimator.objective_from,
    }.items():
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"config key '{key}' must be in [0, 1); got {value}")
    t, e = cfg.teacher, cfg.estimator
    for key, value in {"estimator.horizon": e.horizon, "estimator.sigma": e.sigma}.items():
        if not value > 0:
            raise ConfigError(f"config key '{key}' must be > 0; got {value}")
    if e.population < 0:
        raise ConfigError(
            f"config key 'estimator.population' must be >= 0 (0: the kind's default); "
            f"got {e.population}"
        )
    if not cfg.distill.temperature > 0:
        raise ConfigError(
            f"config key 'distill.temperature' must be > 0; got {cfg.distill.temperature}"
        )
    if not 0.0 <= cfg.distill.mix <= 1.0:
        raise ConfigError(f"config key 'distill.mix' must be in [0, 1]; got {cfg.distill.mix}")
    if cfg.select_students < 0:
        raise ConfigError(f"config key 'select_students' must be >= 0; got {cfg.select_students}")
    if not 0 < cfg.select_level <= 1:
        raise ConfigError(f"config key 'select_level' must be in (0, 1]; got {cfg.select_level}")
    if not t.scale >= 0:
        raise ConfigError(f"config key 'teacher.scale' must be >= 0; got {t.scale}")
    if not t.mix_range >= 0:
        raise ConfigError(f"config key 'teacher.mix_range' must be >= 0; got {t.mix_range}")
    if t.mix_range > 0 and not 0 < cfg.distill.mix < 1:
        raise ConfigError(
            f"teacher.mix_range starts from distill.mix, which must be in (0, 1); "
            f"got {cfg.distill.mix}"
        )
    allowed = {f.name: f for f in dataclasses.fields(Config)}["student"].metadata["choices"]
    unknown = [a for a in mix_of(cfg) if a not in allowed]
    if unknown:
        raise ConfigError(
            f"config key 'students_mix' names unknown student(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(allowed)}"
        )
    if cfg.unroll.steps > cfg.steps:
        raise ConfigError(f"unroll.steps ({cfg.unroll.steps}) must not exceed steps ({cfg.steps})")


def mix_of(cfg: Config) -> list[str]:
    """The student architectures one teacher learns to teach: `students_mix`, or `student`."""
    return [a.strip() for a in cfg.students_mix.split(",") if a.strip()] or [cfg.student]

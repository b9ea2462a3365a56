"""Bad input, as a new user or an adversary gives it: one line that names the problem and
what is allowed, exit 2, and nothing created or changed on disk."""

import hashlib
import shutil

import pytest
import torch

from l2t.commands.cli import main

RUN_CONFIG = "steps: 20\nunroll: {steps: 5}\n"

CONTROL = ["loss.family=composite", "teacher.agent=control"]
TINY = ["steps=10", "episodes=2", "unroll.steps=5", "loss.init_steps=5", "val_batch=50"]
CASES = [  # (arguments, a phrase the line must hold)
    (["train-teacher", "stepz=5"], "did you mean 'steps'"),
    (["train-teacher", "teacher.lrr=1"], "did you mean 'teacher.lr'"),
    (["train-teacher", "optim.foo.bar=1"], "unknown config key 'optim.foo.bar'"),
    (["train-teacher", "optim=1"], "is a section"),
    (["train-teacher", "steps=abc"], "'steps' expects int"),
    (["train-teacher", "resume=maybe"], "'resume' expects bool"),
    (["train-teacher", "steps"], "not of the form key=value"),
    (["train-teacher", "optim.lr=0"], "'optim.lr' must be > 0"),
    (["train-teacher", "optim.lr=-0.1"], "'optim.lr' must be > 0"),
    (["train-teacher", "optim.lr=nan"], "'optim.lr' must be a finite number"),
    (["train-teacher", "optim.lr=inf"], "'optim.lr' must be a finite number"),
    (["train-teacher", "optim.momentum=-1"], "'optim.momentum' must be in [0, 1)"),
    (["train-teacher", "unroll.steps=0"], "'unroll.steps' must be > 0"),
    (["train-teacher", "steps=0"], "'steps' must be > 0"),
    (["train-teacher", "optim.batch_size=0"], "'optim.batch_size' must be > 0"),
    (["train-teacher", "optim.batch_size=100000"], "optim.batch_size (100000) exceeds the 3000"),
    (["train-teacher", "train_size=10"], "optim.batch_size (25) exceeds the 10 training"),
    (["train-teacher", "teacher.beta=-1"], "'teacher.beta' must be >= 0"),
    (["train-teacher", "loss.init_steps=-5"], "'loss.init_steps' must be >= 0"),
    (["train-teacher", "select_students=-1"], "'select_students' must be >= 0"),
    (["train-teacher", "select_students=0"], "use select_students>=1"),  # the teacher's fact
    (["train-teacher", "estimator.kind=tbptt", "estimator.objective=val_acc"], "no gradient"),
    (["train-teacher", *CONTROL[:1], "teacher.agent=mlp"], "set by teacher.agent=control"),
    (["train-teacher", "teacher.agent=control"], "sets the composite family"),
    (["train-teacher", "estimator.sigma=0"], "'estimator.sigma' must be > 0"),
    (["train-teacher", "label_noise=1"], "'label_noise' must be in [0, 1)"),
    (["train-teacher", "seed=-1"], "'seed' must be in [0, 1048576)"),
    (["train-teacher", "unroll.steps=50", "steps=20"], "must not exceed steps"),
    (["train-teacher", "dataset=imagenet"], "must be one of mnist1d"),
    (["train-teacher", "estimator.kind=greedy", "estimator.objective=val_acc"], "no gradient"),
    (["train-teacher", "dataset=cifar10", "data_dir=nowhere"], "CIFAR-10 python batches"),
    (["train-teacher", "dataset=mnist", "data_dir=garbage"], "is not an IDX file"),
    (["train-teacher", "distill.model=none.pt"], "does not exist; write one with l2t train-model"),
    (
        ["train-teacher", "distill.model=foreign/teacher.pt"],
        "is not a model written by `l2t train-model`",
    ),
    (["train-teacher", "teacher.mix_range=3"], "it needs distill.model and teacher.agent=lstm"),
    (["train-teacher", "teacher.mix_range=-1"], "'teacher.mix_range' must be >= 0"),
    (["train-teacher", "students_mix=mlp,vit"], "names unknown student(s) vit; allowed: mlp"),
    (["train-teacher", "students_mix=mlp,cnn1d", "teacher.agent=reinforce"], "use agent=lstm|mlp"),
    (["train-teacher", "estimator.vmap=true", "estimator.kind=tbptt"], "use estimator.vmap=false"),
    (["train-teacher", "estimator.sigma_controls=ce=0.1"], "teacher.agent=control with"),
    (
        ["train-teacher", *CONTROL, "estimator.sigma_controls=gce=0.1"],
        "loss.ranges does not move gce",
    ),
    (["train-teacher", *CONTROL, "estimator.sigma_controls=lr=0.1"], "unknown control 'lr'"),
    (["train-teacher", *CONTROL, "estimator.sigma_controls=ce=0"], "the sigma of ce must be > 0"),
    (["train-teacher", *CONTROL, "loss.ranges=ce=inf"], "must be a finite number >= 0"),
    (
        ["train-teacher", "estimator.vmap=true", "dataset=digits", "student=resnet8"],
        "the student (ResNet) has BatchNorm buffers",
    ),
    (["compare", "workers=0", "methods=ce"], "workers must be >= 1; got 0"),
    (["compare", "methods=ce,sce,ce"], "method(s) ce named more than once"),
    (["compare", "workers=two", "methods=ce"], "workers must be an integer; got 'two'"),
    (["train-teacher", "device=cuda"], "this machine has none"),
    (["train-teacher", "--config", "broken.yaml"], "is not valid YAML at line 2, column 1"),
    (["train-teacher", "--config", "list.yaml"], "must hold a mapping"),
    (["train-teacher", "--config", "twice.yaml"], "the key 'steps' is given twice"),
    (["train-teacher", "--config", "alias.yaml"], "aliases (*name) are not allowed"),
    (["train-teacher", "--config", "missing.yaml"], "does not exist"),
    (["train-teacher", "out=a_file"], "is a file; train-teacher writes a directory"),
    (["train-model", "out=a_file"], "is a file; train-model writes a directory"),
    (["train-teacher", "--config", "garbage"], "'garbage' is a directory, not a YAML file"),
    (["train-teacher", "--config", "/dev/null"], "is not a regular file (a device or a pipe)"),
    (["train-teacher", "out=run"], "already holds a run; pass resume=true"),
    (["train-teacher", "out=damaged", "resume=true"], "is not a file l2t wrote, or it is damaged"),
    (["train-teacher", "out=fresh", "resume=true"], "does not exist"),
    # files that load but are the wrong thing (issue 35)
    (
        ["train-teacher", "out=swapped", "resume=true", *TINY],
        "not a checkpoint of l2t train-teacher (no 'episode')",
    ),
    (["train-teacher", "out=listed", "resume=true", *TINY], "(it holds a list)"),
    (
        ["teach", "teacher=no_schedule", "mode=schedule"],
        "is not a loss schedule of l2t (schedule.pt) (no 'phi_shapes')",
    ),
    (["teach", "teacher=bad_section"], "config key 'teacher' is a section"),
    # a command writes only into a new or empty directory or a run of its own (issue 35)
    (["train-teacher", "out=mine"], "holds files l2t did not write (notes.txt)"),
    (["train-teacher", "out=."], "holds files l2t did not write (a_file, alias.yaml, "),
    (["teach", "teacher=trained", "out=run"], "holds a train-teacher run; teach writes only"),
    (["compare", "methods=ce", "out=trained"], "holds a train-teacher run; compare writes"),
    (["train-model", "out=trained"], "holds a train-teacher run; train-model writes"),
    (["sweep", "grid.yaml", "out=other_sweep"], "holds another sweep (its sweep.yaml differs)"),
    (["teach", "teacher=truncated"], "is not a file l2t wrote, or it is damaged"),
    (["teach", "teacher=foreign"], "is not a teacher written by l2t train-teacher"),
    (["teach", "teacher=nowhere"], "not a run directory"),
    (["teach", "teacher=truncated", "mode=replay"], "mode must be one of online, schedule"),
    (["teach", "teacher=truncated", "loss.hidden=8"], "belongs to the teacher's run"),
    # a real teacher applied to what it cannot teach
    (["teach", "teacher=trained", "teacher.beta=2"], "teacher.beta belongs to the teacher's run"),
    (["compare", "teacher=trained", "student=resnet8"], "'resnet8' needs image input"),
    (["compare", "seeds=0"], "seeds must be >= 1"),
    (["compare", "methods=foo"], "unknown method(s) ['foo']"),
    (["compare", "methods=teacher_online"], "need teacher=RUN_DIR"),
    (["sweep", "broken.yaml"], "sweep file 'broken.yaml' is not valid YAML"),
    (["sweep", "list.yaml"], "must be a mapping"),
    (["sweep", "sweep.yaml", "--workers", "0"], "--workers must be >= 1"),
    (["sweep", "log0.yaml"], "draws in log space, so min must be > 0; got 0"),
    (
        ["train-teacher", "--config", "huge.yaml"],
        "'steps' expects int, got [0, 1, 2, 3, 4, 5, ...]",
    ),
    (["train-teacher", "loss.ranges=" + "x" * 50_000], "characters left out) ... xxx"),
    (["sweep", "early.yaml"], "early_terminate runs locally with method bayes (optuna)"),
    (["sweep", "program.yaml"], "unknown key(s) program; allowed: name, description"),
    (["sweep", "valuez.yaml"], "unknown key(s) valuez (did you mean"),
    (["sweep", "q0.yaml"], "q must be > 0; got 0"),
    (["sweep", "text.yaml"], "min and max must be numbers; got 0.1, 'x'"),
    (["bench", "out=a_file"], "out=FILE.json"),
    (["nocommand"], "unknown command 'nocommand'"),
]


def _tree(root):
    """Every path under `root` with a digest of its bytes: what a refused command must leave."""
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "broken.yaml").write_text("steps: [1, 2\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "twice.yaml").write_text("steps: 10\nsteps: 20\n")
    (root / "alias.yaml").write_text("a: &x [1, 2]\nb: *x\n")
    (root / "sweep.yaml").write_text("method: grid\nparameters: {seed: {values: [0, 1]}}\n")
    (root / "a_file").write_text("not a directory\n")
    (root / "huge.yaml").write_text(f"steps: {list(range(100_000))}\n")
    (root / "mine").mkdir()
    (root / "mine" / "notes.txt").write_text("a user's own file\n")
    metric = "metric: {name: best_val_acc, goal: maximize}\n"
    (root / "grid.yaml").write_text(
        f"method: grid\n{metric}parameters: {{seed: {{values: [0]}}}}\n"
    )
    ranges = {
        "log0": "{distribution: log_uniform_values, min: 0, max: 1}",
        "q0": "{distribution: q_uniform, min: 0, max: 1, q: 0}",
        "text": "{min: 0.1, max: x}",
    }
    ranges["valuez"] = "{valuez: [0.1]}"
    for name, spec in ranges.items():
        (root / f"{name}.yaml").write_text(
            f"method: random\n{metric}parameters:\n  optim.lr: {spec}\n"
        )
    early = f"method: random\n{metric}early_terminate: {{type: hyperband}}\nparameters: {{}}\n"
    (root / "early.yaml").write_text(early)
    program = f"method: random\n{metric}program: train.py\nparameters: {{}}\n"
    (root / "program.yaml").write_text(program)
    (root / "other_sweep").mkdir()
    (root / "other_sweep" / "sweep.yaml").write_text("method: random\nparameters: {}\n")
    (root / "garbage").mkdir()
    for name in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
        (root / "garbage" / f"{name}-ubyte").write_bytes(b"\x01\x02 not idx")
    for name in ("run", "damaged", "truncated", "foreign"):
        (root / name).mkdir()
        (root / name / "config.yaml").write_text(RUN_CONFIG)
    (root / "run" / "checkpoint.pt").write_bytes(b"a run was here")
    (root / "damaged" / "checkpoint.pt").write_bytes(b"\x80\x02 torn")
    (root / "truncated" / "teacher.pt").write_bytes(b"PK\x03\x04 truncated")
    torch.save({"weights": torch.ones(3)}, root / "foreign" / "teacher.pt")
    tiny = [*TINY[:1], "episodes=1", *TINY[2:], "progress=false"]
    assert main(["train-teacher", f"out={root / 'trained'}", *tiny]) == 0
    for name in ("swapped", "listed", "no_schedule", "bad_section"):  # a run, one file wrong
        shutil.copytree(root / "trained", root / name)
    shutil.copy(root / "swapped" / "teacher.pt", root / "swapped" / "checkpoint.pt")
    torch.save([1, 2, 3], root / "listed" / "checkpoint.pt")
    torch.save({}, root / "no_schedule" / "schedule.pt")
    (root / "bad_section" / "config.yaml").write_text("teacher: 5\n")
    return root


@pytest.mark.parametrize(("args", "phrase"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    workspace, monkeypatch, capsys, args, phrase
):
    monkeypatch.chdir(workspace)
    before = _tree(workspace)
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("l2t: error: "), captured.err
    assert phrase in lines[0], lines[0]
    assert len(lines[0]) <= 620  # whatever the input's size (l2t/commands/cli.py LINE)
    assert _tree(workspace) == before
    assert not (workspace / "runs").exists()


def test_compare_seed_without_seeds_says_which_is_which(tmp_path, capsys):
    args = ["compare", "seed=3", "methods=ce", "steps=20", "eval_every=10", f"out={tmp_path}"]
    assert main([*args, "unroll.steps=5"]) == 0
    assert "the number of students per method is seeds= (5 here)" in capsys.readouterr().err

import pytest

from l2t.config import Config, ConfigError, allowed_keys, from_dict, load_config, migrate, teachers


def test_file_then_overrides_with_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 500\nteacher: {lr: 0.01, update: three_stage}\n")
    cfg = load_config(path, ["teacher.lr=1e-3", "resume=true", "optim.momentum=0.9", "seed=4"])
    assert cfg.steps == 500 and cfg.teacher.update == "three_stage"
    assert cfg.teacher.lr == pytest.approx(1e-3) and isinstance(cfg.teacher.lr, float)
    assert cfg.resume is True and cfg.optim.momentum == 0.9 and cfg.seed == 4


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["steps=0"], "'steps' must be > 0"),
        (["unroll.steps=50", "steps=20"], "must not exceed steps"),
        (["teacher=x"], "'teacher' is a section"),
        (["resume=maybe"], "'resume' expects bool"),
        (["optim.lr=fast"], "'optim.lr' expects float"),
        (["select_students=-1"], "'select_students' must be >= 0"),
        (["estimator.objective_from=1"], "must be in \\[0, 1\\)"),
        (["estimator.population=-1"], "'estimator.population' must be >= 0"),
        (["teacher.population=8"], "'teacher.population' is now 'estimator.population'"),
        (["teacher.estimator=greedy"], "'teacher.estimator' is now 'estimator.kind'"),
    ],
)
def test_bad_values_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_an_old_key_in_a_config_file_is_refused_with_its_new_name(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("teacher:\n  estimator: greedy\n")
    with pytest.raises(ConfigError, match=r"'teacher.estimator' is now 'estimator.kind'"):
        load_config(path)


@pytest.mark.parametrize(("kind", "size"), [("pes", 8), ("greedy", 2)])
def test_a_run_saved_with_the_old_keys_reads_as_the_same_run(kind, size):
    """Before the estimator section, greedy and tbptt counted `teacher.students` and pes and es
    `teacher.population`: a saved config keeps the count its kind used."""
    saved = Config().to_dict()
    del saved["estimator"]
    saved["teacher"].update(estimator=kind, horizon=3, students=2, population=8, sigma=0.1)
    cfg = from_dict(migrate(saved))
    assert (cfg.estimator.kind, cfg.estimator.horizon, cfg.estimator.sigma) == (kind, 3, 0.1)
    assert teachers.population(cfg.estimator) == size
    assert migrate(Config().to_dict()) == Config().to_dict()  # today's configs are left alone


def test_the_population_defaults_to_what_each_kind_ran_before():
    kinds = ("pes", "es", "greedy", "tbptt")
    sizes = {
        k: teachers.population(load_config(None, [f"estimator.kind={k}"]).estimator) for k in kinds
    }
    assert sizes == {"pes": 4, "es": 4, "greedy": 1, "tbptt": 1}


def test_unknown_key_names_the_closest_and_where_all_are_listed():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["unrol.steps=3"])
    assert "did you mean 'unroll.steps'" in str(info.value) and "--help" in str(info.value)
    assert {
        "dataset",
        "student",
        "steps",
        "episodes",
        "seed",
        "device",
        "out",
        "tracking",
        "teacher.alpha",
        "teacher.update",
        "teacher.lr",
        "unroll.steps",
        "unroll.backend",
        "resume",
    } <= set(allowed_keys())


def test_python_api_mirrors_the_cli():
    import l2t
    from l2t.commands.training import train_teacher

    assert l2t.train_teacher is train_teacher
    assert isinstance(l2t.load_config(None, ["steps=30"]), l2t.Config)
    with pytest.raises(AttributeError):
        _ = l2t.no_such_thing


def test_help_lists_every_key_with_default_and_comment(capsys):
    from l2t.commands.cli import main
    from l2t.config import allowed_keys, describe_keys

    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = capsys.readouterr().out
    for key in allowed_keys():
        assert f"\n  {key} (" in text
    assert all(doc.comment for doc in describe_keys()), "every key has a comment"
    assert "estimator.kind (str, default 'pes'; one of pes|greedy|tbptt|es)" in text
    assert "+ mix_range * tanh(.)) (0: distill.mix fixed" in text  # a comment's second line


def test_an_unknown_key_suggests_the_closest_one():
    with pytest.raises(ConfigError, match=r"did you mean 'optim\.lr'"):
        load_config(None, ["optim.lrr=0.1"])


def test_a_variant_of_a_run_is_a_new_value_and_checked():
    from l2t.config import varied

    cfg = Config()
    lr = cfg.optim.lr
    other = varied(cfg, {"optim": {"lr": lr * 3}, "steps": 70})
    assert (other.optim.lr, other.steps) == (lr * 3, 70)
    assert (cfg.optim.lr, cfg.steps) == (lr, Config().steps)  # the run itself is unchanged
    with pytest.raises(ConfigError, match=r"optim\.lrr"):
        varied(cfg, {"optim": {"lrr": 1}})


def test_the_projects_configs_load_by_name_from_any_directory(tmp_path, monkeypatch):
    """`--config mnist1d_mlp` after `pip install` (l2t/configs is package data): a name, or
    a `configs/NAME.yaml` path that does not exist here, is the packaged file."""
    from l2t.config import CONFIGS, load_config

    monkeypatch.chdir(tmp_path)
    names = sorted(p.stem for p in CONFIGS.glob("*.yaml") if not p.stem.startswith("sweep"))
    assert "mnist1d_unlabeled" in names and "mnist1d_mlp_composite" in names
    for name in names:
        assert load_config(name) == load_config(f"configs/{name}.yaml")
    cfg = load_config("mnist1d_unlabeled")
    assert (cfg.labeled, cfg.unlabeled, cfg.labeled_batch) == (1000, 22500, 32)
    assert load_config("mnist1d_mlp_composite").loss.family == "composite"


def test_tf32_is_set_for_cuda_devices_only(monkeypatch):
    """On CUDA `tf32` sets torch's two TF32 switches; a CPU run leaves them as they were."""
    import torch

    from l2t.io import device

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        assert device.resolve_device("cpu", tf32=False).type == "cpu"
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
        monkeypatch.setattr(device, "_device", lambda name: torch.device("cuda"))
        for on in (True, False):
            assert device.resolve_device("cuda", tf32=on).type == "cuda"
            assert torch.backends.cuda.matmul.allow_tf32 is on
            assert torch.backends.cudnn.allow_tf32 is on
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before

"""`l2t.LearnedLoss` in a loop written by hand (plain torch.optim.SGD, the run's data and
initialization) trains the student `l2t teach` trains, schedule and online; its state
round-trips; bad use gets one clear line."""

import json
from pathlib import Path

import pytest
import torch
from runs import teach_student, trained_run
from torch.func import functional_call

import l2t
from l2t.commands.applying import load_teacher, make_task, run_config
from l2t.commands.cli import main
from l2t.config import ConfigError
from l2t.engine.lifetime import advance, start
from l2t.engine.seeds import student_seed
from l2t.engine.student_state import validate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory.mktemp("teacher") / "run", observe="state")  # online


def _by_hand(run, mode):
    """The student of `teach`'s seed, trained in a plain PyTorch loop with the criterion."""
    cfg, task, model, start, seed = teach_student(run)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr)
    criterion = l2t.LearnedLoss.from_run(run, mode=mode, total_steps=cfg.steps)

    def observe(batches):
        with torch.no_grad():
            state = start.__class__(
                dict(model.named_parameters()), dict(model.named_buffers()), {}, 0,
                start.train_loss, start.update_norm, start.finite,
            )  # fmt: skip
            val_loss, val_acc = validate(model, state, batches.x_val, batches.y_val)
        criterion.observe(val_loss.item(), val_acc.item(), model)

    if mode == "online":
        observe(task.batches(seed, 0))
    for t in range(task.teacher_steps):
        batches = task.batches(seed, t)
        for x, y in zip(batches.x, batches.y):
            loss = criterion(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            criterion.step()
        if mode == "online":
            observe(batches)
    with torch.no_grad():
        logits = functional_call(model, dict(model.named_parameters()), (task.splits.x_test,))
    return (logits.argmax(1) == task.splits.y_test).float().mean().item(), model, criterion


def _taught(run, mode):
    """The final student of `teach`'s seed on l2t's own path (l2t/engine/teaching.py's engine)."""
    cfg = run_config(run, {})
    task = make_task(cfg)
    teacher = load_teacher(run, mode, cfg, torch.device("cpu"))
    life = start(task, teacher, student_seed(cfg.seed, "evaluation", 0))
    while not life.done(task):
        life = advance(task, teacher, teacher.theta(), life).life
    return life.student


@pytest.mark.parametrize("mode", ["schedule", "online"])
def test_a_loop_by_hand_trains_the_student_l2t_teach_trains(run, tmp_path, mode):
    out = tmp_path / mode
    assert main(["teach", f"teacher={run}", f"mode={mode}", f"out={out}"]) == 0
    taught = json.loads((out / "summary.json").read_text())["test_acc"]
    acc, model, criterion = _by_hand(run, mode)
    assert acc == pytest.approx(taught, abs=2e-3)  # float rounding of two SGD codes: <= 1 sample
    student = _taught(run, mode)
    for name, p in model.named_parameters():  # SGD's p + (-lr) g against l2t's p - lr g
        torch.testing.assert_close(p.detach(), student.params[name], rtol=1e-4, atol=1e-5)
    z, y = torch.randn(8, 10), torch.randint(10, (8,))  # and it is not cross-entropy
    assert not torch.allclose(criterion(z, y), torch.nn.functional.cross_entropy(z, y))
    assert criterion.t == run_config(run, {}).steps
    state = criterion.state_dict()
    again = l2t.LearnedLoss.from_run(run, mode=mode, total_steps=criterion.total_steps)
    again.load_state_dict(state)
    z, y = torch.randn(8, 10), torch.randint(10, (8,))
    torch.testing.assert_close(again(z, y), criterion(z, y))  # a resumed loop resumes it


def test_bad_use_gets_one_clear_line(run, tmp_path):
    with pytest.raises(ConfigError, match="total_steps is required"):
        l2t.LearnedLoss.from_run(run)
    with pytest.raises(ConfigError, match="total_steps must be a positive integer"):
        l2t.LearnedLoss.from_run(run, total_steps=0)
    with pytest.raises(ConfigError, match="mode must be one of"):
        l2t.LearnedLoss.from_run(run, mode="replay", total_steps=10)
    with pytest.raises(ConfigError, match="not a run directory"):
        l2t.LearnedLoss.from_run(tmp_path, total_steps=10)
    criterion = l2t.LearnedLoss.from_run(run, total_steps=10)
    with pytest.raises(ValueError, match="expects logits"):
        criterion(torch.randn(8, 10), torch.randint(10, (7,)))
    with pytest.warns(UserWarning, match="ignored in schedule mode"):
        criterion.observe(1.0, 0.5)
    with pytest.raises(ConfigError, match="reduction must be one of mean, sum, none"):
        l2t.LearnedLoss.from_run(run, total_steps=10, reduction="avg")
    with pytest.raises(ConfigError, match="weight must be a 1-D tensor of non-negative"):
        l2t.LearnedLoss.from_run(run, total_steps=10, weight=-torch.ones(10))
    criterion.progress = 1.0
    with pytest.warns(UserWarning, match="past total_steps"):
        criterion.step()
    with pytest.raises(ConfigError, match="total_steps must be a positive integer"):
        l2t.LearnedLoss.from_run(run, total_steps=True)


@pytest.mark.parametrize(
    ("targets", "phrase"),
    [
        (
            torch.tensor([0, 10, 3, 1]),
            r"class indices in \[0, 10\) or ignore_index=-100; got \[10\]",
        ),
        (torch.tensor([0, -1, 3, 1000]), r"got \[-1, 1000\]"),
        (torch.tensor([0.0, 1.0, 2.0, 3.0]), "an integer tensor\\); got torch.float32"),
        (torch.tensor([True, False, True, True]), "got torch.bool"),
        (torch.eye(10)[:4], r"reads \(B, 10\) targets as neither: pass class indices"),
        (torch.zeros(4, 1, dtype=torch.long), r"reads \(B, 1\) targets as neither"),
    ],
    ids=["10 of 10 classes", "-1 and 1000", "float", "bool", "one-hot", "(B, 1)"],
)
def test_targets_it_cannot_read_are_one_clear_error(run, targets, phrase):
    criterion = l2t.LearnedLoss.from_run(run, total_steps=10)
    with pytest.raises(ValueError, match=phrase):
        criterion(torch.randn(4, 10), targets)


def test_an_empty_batch_is_a_zero_loss_with_zero_gradients(run):
    criterion = l2t.LearnedLoss.from_run(run, total_steps=10)
    logits = torch.randn(0, 10, requires_grad=True)
    loss = criterion(logits, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None and logits.grad.shape == (0, 10)


def test_it_behaves_like_a_pytorch_criterion(run, float64):
    """reduction, ignore_index and (B, C, d) logits as nn.CrossEntropyLoss has them; calls
    under no_grad or in eval() leave the training record alone; an online criterion needs no
    observe() before its first step; .to() moves its state."""
    z, y = torch.randn(12, 10), torch.randint(10, (12,))
    mean = l2t.LearnedLoss.from_run(run, total_steps=100)
    total = l2t.LearnedLoss.from_run(run, total_steps=100, reduction="sum")
    torch.testing.assert_close(total(z, y), 12 * mean(z, y))
    ignored = y.clone()
    ignored[[2, 5]] = -100
    keep = ignored != -100
    torch.testing.assert_close(mean(z, ignored), mean(z[keep], y[keep]))
    z3, y3 = torch.randn(3, 10, 4), torch.randint(10, (3, 4))
    flat = z3.movedim(1, -1).reshape(-1, 10), y3.reshape(-1)
    torch.testing.assert_close(mean(z3, y3), mean(*flat))

    online = l2t.LearnedLoss.from_run(run, mode="online", total_steps=100)
    first = online(z, y)  # no observe() yet: the documented assumption, not an error
    assert torch.isfinite(first) and len(online._losses) == 1
    with torch.no_grad():
        online(z, y)
    online.eval()
    online(z, y)
    assert len(online._losses) == 1, "evaluation calls are not training losses"
    online.train()
    online.to(torch.float32)
    assert all(v.dtype == torch.float32 for v in online._teacher_state.values())
    assert online._params is not None and online._params[0].dtype == torch.float32


def test_reduction_none_and_class_weights_as_cross_entropy_has_them(run, float64):
    """`none`: each sample's share (its mean the loss; 0 where ignored; the target's shape);
    class weights: `sum_i w_{y_i} l_i / sum_i w_{y_i}`, and ones are the unweighted loss."""
    z, y = torch.randn(12, 10), torch.randint(10, (12,))
    y[[3, 4]] = -100
    keep = y != -100
    mean = l2t.LearnedLoss.from_run(run, total_steps=100)
    each = l2t.LearnedLoss.from_run(run, total_steps=100, reduction="none")
    losses = each(z, y)
    assert losses.shape == (12,) and (losses[~keep] == 0).all()
    torch.testing.assert_close(losses[keep].mean(), mean(z, y))
    z3, y3 = torch.randn(3, 10, 4), torch.randint(10, (3, 4))
    assert each(z3, y3).shape == (3, 4)
    w = torch.rand(10, dtype=torch.float64) + 0.1
    weighted = l2t.LearnedLoss.from_run(run, total_steps=100, weight=w)
    expected = (w[y[keep]] * losses[keep]).sum() / w[y[keep]].sum()
    torch.testing.assert_close(weighted(z, y), expected)
    ones = l2t.LearnedLoss.from_run(run, total_steps=100, weight=torch.ones(10))
    torch.testing.assert_close(ones(z, y), mean(z, y))
    summed = l2t.LearnedLoss.from_run(run, total_steps=100, weight=w, reduction="sum")
    torch.testing.assert_close(summed(z, y), (w[y[keep]] * losses[keep]).sum())
    assert "weight" in weighted.state_dict()  # a buffer: .to() and state_dict carry it


def test_every_familys_per_sample_losses_average_to_its_loss(float64):
    """What `reduction="none"` and class weights stand on, in float64: the DLN (hard and
    soft labels), the parametric family, and the composite with its weight net and KD on."""
    from l2t.losses import composite
    from l2t.losses.dln import DynamicLossNetwork
    from l2t.losses.families import FAMILIES, LossSettings
    from l2t.losses.labels import pack

    g = torch.Generator().manual_seed(1)
    z = torch.randn(9, 10, generator=g, dtype=torch.float64)
    y = torch.randint(10, (9,), generator=g)
    packed = pack(y, torch.randn(9, 10, generator=g, dtype=torch.float64))
    phi = [w.detach().double() for w in DynamicLossNetwork(hidden=8, layers=2).phi]
    shape = composite.CompositeLoss.around(
        composite.point("kd", 0.5), composite.parse_ranges("kd=0.5,reweight=2"), 3.0
    )
    params = composite.base_params(composite.point("kd", 0.5))
    params[3] = torch.randn(params[3].shape, generator=g, dtype=torch.float64)  # w2: not 1
    cases = [
        ("dln", phi, LossSettings(), y),
        ("dln", phi, LossSettings(3.0, 0.4), packed),
        (
            "parametric",
            [torch.tensor([0.5, 0.2, 0.3, 0.4], dtype=torch.float64)],
            LossSettings(),
            y,
        ),
        ("composite", [p.double() for p in params], LossSettings(3.0, 0.5, shape), packed),
    ]
    for family, p, at, targets in cases:
        each = FAMILIES[family].samples(p, at)(z, targets)
        assert each.shape == (9,)
        torch.testing.assert_close(each.mean(), FAMILIES[family].loss(p, at)(z, targets))


def test_under_autocast_the_loss_is_float32(run):
    criterion = l2t.LearnedLoss.from_run(run, total_steps=100)
    z, y = torch.randn(8, 10), torch.randint(10, (8,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = criterion(z.bfloat16(), y)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, criterion(z.bfloat16().float(), y))


def test_the_digits_example_trains_with_a_learned_loss(run):
    """examples/digits_learned_loss.py as a user runs it: AdamW, warm-up, its own loader."""
    import runpy

    example = runpy.run_path(str(ROOT / "examples" / "digits_learned_loss.py"))
    assert example["main"](str(run), epochs=3) > 0.8  # chance is 0.1


def test_the_cifar_example_says_what_it_needs(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "cifar10_learned_loss.py"), "run", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    try:
        import torchvision  # noqa: F401
    except ImportError:
        assert done.returncode == 0 and "needs torchvision" in done.stdout
    else:
        assert done.returncode == 1 and "no CIFAR-10 python batches" in done.stderr


def test_gradient_accumulation_is_one_step_and_the_full_batch_gradient(run, float64):
    """Two half batches accumulated into one optimizer step: one `step()` after it, the
    same loss parameters for both halves (the teacher's K counts optimizer steps), and the
    gradient of the whole batch (mean reduction, each half weighted 1/2)."""
    model = torch.nn.Linear(10, 10)
    x, y = torch.randn(16, 10), torch.randint(10, (16,))
    whole = l2t.LearnedLoss.from_run(run, total_steps=20)
    halves = l2t.LearnedLoss.from_run(run, total_steps=20)
    for _ in range(7):  # into the schedule, past a teacher step's start (K = 5)
        whole.step()
        halves.step()
    full = torch.autograd.grad(whole(model(x), y), list(model.parameters()))
    split = [torch.zeros_like(p) for p in model.parameters()]
    for part in (slice(0, 8), slice(8, 16)):
        loss = halves(model(x[part]), y[part]) / 2
        split = [a + g for a, g in zip(split, torch.autograd.grad(loss, list(model.parameters())))]
    halves.step()  # once, after the optimizer step
    assert halves.t == 8 and whole.t == 7
    for a, b in zip(full, split):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def _at_cross_entropy(mode="schedule"):
    """`LearnedLoss` replaying the composite family at cross-entropy's point, nothing moved
    (the bench's row): the loss `l2t.LearnedLoss` hands to `F.cross_entropy` whole."""
    from agents import ScheduleTeacher
    from l2t.config import from_dict, parts
    from l2t.engine.schedule import Schedule

    cfg = from_dict({"loss": {"family": "composite", "base": "ce", "ranges": ""}})
    base = parts.base_loss(cfg)
    schedule = Schedule([tuple(p.shape) for p in base])
    schedule.record(0.0, base)
    teacher = ScheduleTeacher.from_schedule(schedule).around(base)
    k, family, composite = cfg.unroll.steps, cfg.loss.family, parts.composite(cfg)
    return l2t.LearnedLoss(teacher, mode, 100, k, family, composite, lr=cfg.optim.lr)


def test_at_cross_entropys_point_it_is_cross_entropy_with_no_host_read(monkeypatch, float64):
    """Issue 34: at the composite's ce point a call is `F.cross_entropy`'s — the same value
    and gradient for (B, C) and (B, C, d) logits and ignored targets — and, after the call
    that binds it, reads nothing on the host (a read raises here); a wrong target is still
    the one clear error, and every target ignored is cross-entropy's NaN."""
    criterion, reference = _at_cross_entropy(), torch.nn.CrossEntropyLoss()
    z, y = torch.randn(12, 10), torch.randint(10, (12,))
    criterion(z, y)  # the first call binds the loss parameters (one read per teacher step)

    def no_host_read(*args, **kwargs):
        raise AssertionError("a host read in a call at cross-entropy's point")

    for name in ("tolist", "item", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, no_host_read)
    y[[2, 5]] = -100
    z3, y3 = torch.randn(3, 10, 4), torch.randint(10, (3, 4))
    for logits, targets in ((z, y), (z3, y3)):
        mine, theirs = logits.clone().requires_grad_(), logits.clone().requires_grad_()
        loss, expected = criterion(mine, targets), reference(theirs, targets)
        loss.backward(), expected.backward()
        assert torch.equal(loss, expected) and torch.equal(mine.grad, theirs.grad)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"class indices in \[0, 10\) or ignore_index=-100"):
        criterion(z, torch.tensor([0, 10] * 6))
    assert torch.isnan(criterion(z, torch.full((12,), -100)))
    assert torch.isnan(_at_cross_entropy()(z, torch.full((12,), -100)))  # a first call: bound


def test_an_online_teacher_at_cross_entropys_point_reads_the_losses_it_returned():
    """The fast path records each training call's loss for the next proposal (none under
    no_grad); a batch whose every target was ignored (NaN) is left out of their mean."""
    criterion = _at_cross_entropy("online")
    z, y = torch.randn(12, 10), torch.randint(10, (12,))
    first = criterion(z, y)
    second = criterion(z, y)
    with torch.no_grad():
        criterion(z, y)
    criterion(z, torch.full((12,), -100))
    assert len(criterion._losses) == 3 and torch.equal(first, second)
    read = torch.stack(criterion._losses).nanmean()
    torch.testing.assert_close(read, first.detach())

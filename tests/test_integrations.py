"""`l2t.LearnedLoss` in the loops people run: a Lightning fit with `LearnedLossCallback`
trains the student a hand-written loop trains (steps and observations at the same times),
counts optimizer steps under gradient accumulation; the Hugging Face `Trainer` hook scales
micro-batch losses to the whole batch's and steps and observes the criterion."""

import warnings
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from runs import teach_student, trained_run
from torch.utils.data import DataLoader

import l2t
from l2t.integrations.lightning import LearnedLossCallback

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory.mktemp("teacher") / "run", observe="state")  # online


def _student(run):
    """The run's task, a student at `teach`'s first initialization, its batches in order."""
    cfg, task, model, _, seed = teach_student(run)
    batches = []
    for t in range(task.teacher_steps):
        b = task.batches(seed, t)
        batches += list(zip(b.x, b.y))
    return cfg, task, model, batches


class Module(pl.LightningModule):
    def __init__(self, model, criterion, lr, x_val, y_val):
        super().__init__()
        self.model, self.criterion, self.lr = model, criterion, lr
        self.val = [(x_val, y_val)]

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.criterion(self.model(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.model.parameters(), lr=self.lr)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=None)


def _trainer(steps, k, **kwargs):
    return pl.Trainer(
        max_steps=steps,
        val_check_interval=k,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def _recorded(criterion):
    """`criterion` whose observations are kept as (its step, val loss, val acc)."""
    criterion.seen = []
    observe = criterion.observe

    def recording(val_loss, val_acc, model=None):
        criterion.seen.append((criterion.t, round(val_loss, 5), round(val_acc, 5)))
        observe(val_loss, val_acc, model)

    criterion.observe = recording
    return criterion


def test_a_lightning_fit_trains_the_student_a_loop_by_hand_trains(run):
    """The same student, and the same observations at the same steps."""
    cfg, task, model, batches = _student(run)
    x_val, y_val = task.splits.x_val, task.splits.y_val
    by_hand = task.build()
    by_hand.load_state_dict(model.state_dict())
    optimizer = torch.optim.SGD(by_hand.parameters(), lr=cfg.optim.lr)
    criterion = _recorded(l2t.LearnedLoss.from_run(run, mode="online", total_steps=cfg.steps))
    for i, (x, y) in enumerate(batches):
        loss = criterion(by_hand(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        criterion.step()
        if (i + 1) % task.k == 0:  # the end of a teacher step: what the teacher reads
            with torch.no_grad():
                logits = by_hand(x_val)
                acc = (logits.argmax(1) == y_val).float().mean()
                criterion.observe(F.cross_entropy(logits, y_val).item(), acc.item(), by_hand)

    fitted = _recorded(l2t.LearnedLoss.from_run(run, mode="online", total_steps=cfg.steps))
    module = Module(model, fitted, cfg.optim.lr, x_val, y_val)
    trainer = _trainer(cfg.steps, task.k, callbacks=[LearnedLossCallback(fitted)])
    trainer.fit(module, DataLoader(batches, batch_size=None))
    assert fitted.t == criterion.t == cfg.steps
    assert len(fitted.seen) == task.teacher_steps and fitted.seen == criterion.seen
    for (name, p), q in zip(model.named_parameters(), by_hand.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), msg=name)  # observed as the loop


def test_under_gradient_accumulation_it_counts_optimizer_steps(run):
    cfg, task, model, batches = _student(run)
    criterion = l2t.LearnedLoss.from_run(run, mode="online", total_steps=cfg.steps)
    module = Module(model, criterion, cfg.optim.lr, task.splits.x_val, task.splits.y_val)
    steps = len(batches) // 4
    trainer = _trainer(steps, 2 * task.k, accumulate_grad_batches=2)
    trainer.callbacks.append(LearnedLossCallback(criterion))
    with pytest.warns(UserWarning, match=f"plans {steps} optimizer steps"):
        trainer.fit(module, DataLoader(batches[: 2 * steps], batch_size=None))
    assert trainer.global_step == criterion.t == steps


def test_a_metric_it_cannot_find_is_one_clear_error(run):
    cfg, task, model, batches = _student(run)
    criterion = l2t.LearnedLoss.from_run(run, mode="online", total_steps=task.k)
    module = Module(model, criterion, cfg.optim.lr, task.splits.x_val, task.splits.y_val)
    trainer = _trainer(task.k, task.k, callbacks=[LearnedLossCallback(criterion, val_acc="acc")])
    wrong = r"reads acc .* logged: val_acc, val_loss"
    with warnings.catch_warnings(), pytest.raises(ValueError, match=wrong):
        warnings.simplefilter("ignore")
        trainer.fit(module, DataLoader(batches[: task.k], batch_size=None))


def test_the_trainer_hook_sums_micro_batches_to_the_whole_batch_loss(run, float64):
    """The Trainer divides by the accumulated batch's item count once a loss hook is given:
    the micro-batches' scaled losses (and gradients) add up to the whole batch's mean, with
    ignored targets left out of the count."""
    from l2t.integrations.huggingface import compute_loss_func

    criterion = l2t.LearnedLoss.from_run(run, mode="schedule", total_steps=60).double()
    hook = compute_loss_func(criterion)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(12, 10, generator=g, requires_grad=True)
    y = torch.randint(10, (12,), generator=g)
    y[[1, 7, 8]] = -100
    whole = criterion(z, y)
    (grad_whole,) = torch.autograd.grad(whole, z)
    items = (y != -100).sum()
    parts = [hook({"logits": z[i : i + 4]}, y[i : i + 4], items) for i in (0, 4, 8)]
    torch.testing.assert_close(sum(parts), whole)
    (grad_parts,) = torch.autograd.grad(sum(parts), z)
    torch.testing.assert_close(grad_parts, grad_whole)
    assert hook((z,), y) is not None  # a tuple output, no count: the criterion's loss


@pytest.mark.parametrize("accumulate", [1, 2])
def test_the_trainer_example_steps_and_observes_the_criterion(run, accumulate, monkeypatch):
    """examples/hf_trainer_learned_loss.py as a user runs it: the Trainer's loop, optimizer
    and evaluation; the criterion counts optimizer steps and reads every evaluation."""
    import runpy

    example = runpy.run_path(str(ROOT / "examples" / "hf_trainer_learned_loss.py"))
    made = []
    real = l2t.LearnedLoss.from_run

    def from_run(*args, **kwargs):
        made.append(_recorded(real(*args, **kwargs)))
        return made[-1]

    monkeypatch.setattr(l2t.LearnedLoss, "from_run", from_run)
    steps = 150
    assert example["main"](str(run), steps=steps, accumulate=accumulate) > 0.8  # chance 0.1
    (criterion,) = made
    assert criterion.t == steps
    k = criterion.k
    assert [t for t, _, _ in criterion.seen] == list(range(k, steps + 1, k))

"""A learned loss for your own training loop: `l2t.LearnedLoss`, a drop-in criterion
(docs/design.md §3, "A learned loss in your own loop").

    criterion = l2t.LearnedLoss.from_run("runs/latest", mode="schedule", total_steps=N)
    loss = criterion(model(x), y)   # like nn.CrossEntropyLoss
    loss.backward(); optimizer.step(); criterion.step()

`schedule` replays the loss parameters the run recorded, by training progress `t / N`,
changing them every K = `unroll.steps` steps as training did. `online` asks the run's teacher
for new loss parameters every K steps from what it reads of the student: the training loss
and the step size it tracks itself (the mean of the losses it returned; the parameters'
movement when `observe(..., model=model)` is given), and the validation loss and accuracy
the caller reports with `observe`. With the same model, data and plain SGD it trains the
same student as `l2t teach` (a test). Targets are hard labels (B,), or, for a run that
distilled, `l2t.losses.labels.pack(labels, model_logits)` (B, 1 + C): the soft labels' form.

Like `nn.CrossEntropyLoss`: `reduction="mean"|"sum"|"none"` (none: each sample's share of
the batch loss, their mean the mean's loss; an ignored target's entry 0), class `weight`
(C,) (the mean is `sum_i w_{y_i} l_i / sum_i w_{y_i}`, as cross-entropy's), `ignore_index`
(-100: those targets left out; every target ignored gives NaN, as cross-entropy's mean over
no sample; checking costs one host sync a call, except at cross-entropy's point where the
whole call is `F.cross_entropy`'s; `None` skips it),
logits (B, C, d1, ...) with targets (B, d1, ...), a float32 loss under autocast, and
`.to()` moves the teacher's state too. Only calls that train count: under
`torch.no_grad()` or after `.eval()` the loss is computed at the current parameters and
nothing is recorded. `observe` may come at any cadence: each teacher step reads the latest
observation; before the first, it assumes the validation loss is the mean training loss so
far (`ln C` at the very start) and the accuracy is chance (`1 / C`). With gradient
accumulation call `step()` once per optimizer step, after it: the teacher's K counts
optimizer steps, every micro-batch of a step gets the same loss parameters, and (the DLN and
parametric families, and the composite without its weight net) the micro-batches' mean
gradient is the whole batch's (a test); the composite's per-sample weights are normalised
within each micro-batch.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents import Teacher
from l2t.commands.applying import MODES, load_teacher, run_config
from l2t.config import ConfigError, parts
from l2t.engine.lifetime import Observation, TeacherState
from l2t.engine.student_state import FEATURE_NAMES, StudentState, features
from l2t.engine.task import CompositeLoss, loss_fn
from l2t.losses.composite import cross_entropy
from l2t.losses.families import FAMILIES, LossSettings
from l2t.losses.labels import labels_of

REDUCTIONS = ("mean", "sum", "none")


class LearnedLoss(nn.Module):
    """A learned loss as a PyTorch criterion; see the module docstring."""

    def __init__(
        self,
        teacher: Teacher,
        mode: str,
        total_steps: int,
        k: int,
        family: str,
        composite: CompositeLoss | None = None,
        temperature: float = 1.0,
        mix: float = 0.0,
        lr: float = 1.0,
        reduction: str = "mean",
        ignore_index: int | None = -100,
        weight: Tensor | None = None,
    ) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ConfigError(
                f"reduction must be one of {', '.join(REDUCTIONS)}; got {reduction!r}"
            )
        if weight is not None and (
            not isinstance(weight, Tensor) or weight.ndim != 1 or bool((weight < 0).any())
        ):
            raise ConfigError("weight must be a 1-D tensor of non-negative class weights (C,)")
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if not isinstance(total_steps, int) or isinstance(total_steps, bool) or total_steps <= 0:
            raise ConfigError(f"total_steps must be a positive integer; got {total_steps!r}")
        if mode == "online" and teacher.observes_gradient:
            raise ConfigError(
                "this teacher observes dL_val/dphi, which needs the validation data inside "
                "the loss; use mode='schedule', or a teacher trained with teacher.observe=state"
            )
        self.teacher, self.mode, self.total_steps, self.k = teacher, mode, total_steps, k
        self.family, self.composite = family, composite
        self.temperature, self.mix, self.lr = temperature, mix, lr
        self.reduction, self.ignore_index = reduction, ignore_index
        self.weight: Tensor | None
        self.register_buffer("weight", None if weight is None else weight.detach().clone())
        self.t = 0  # optimizer steps taken
        self._params: list[Tensor] | None = None  # the loss parameters of this teacher step
        self._start = 0  # the optimizer step at which they were proposed
        self._teacher_state: TeacherState = teacher.initial_state()
        self._losses: list[Tensor] = []  # the losses returned in this teacher step
        self._observed: tuple[float, float] | None = None  # val loss and accuracy
        self._moved = 0.0  # the parameters' movement over the last teacher step
        self._snapshot: list[Tensor] | None = None
        self._said: set[str] = set()
        self._loss: Callable[[Tensor, Tensor], Tensor] | None = None  # at this step's params
        self._samples: Callable[[Tensor, Tensor], Tensor] | None = None  # ... per sample
        self._cast: tuple[torch.device, torch.dtype] | None = None  # their device and dtype
        self._at: list[Tensor] = []  # the loss parameters at that device and dtype
        self._whole_call = False  # the bound loss is cross-entropy itself (`_cross_entropy`)

    @classmethod
    def from_run(
        cls,
        run: str | Path,
        mode: str = "schedule",
        total_steps: int | None = None,
        reduction: str = "mean",
        ignore_index: int | None = -100,
        weight: Tensor | None = None,
    ) -> LearnedLoss:
        """The learned loss of a `train-teacher` run (its directory or its teacher.pt)."""
        if total_steps is None:
            raise ConfigError("total_steps is required: the optimizer steps of your training")
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        cfg = run_config(run, {})
        teacher = load_teacher(run, mode, cfg, torch.device("cpu"))
        return cls(
            teacher,
            mode,
            total_steps,
            cfg.unroll.steps,
            cfg.loss.family,
            parts.composite(cfg),
            cfg.distill.temperature,
            cfg.distill.mix,
            cfg.optim.lr,
            reduction,
            ignore_index,
            weight,
        )

    # -- training progress ----------------------------------------------------------------
    @property
    def progress(self) -> float:
        return self.t / self.total_steps

    @progress.setter
    def progress(self, value: float) -> None:
        self.t = round(value * self.total_steps)

    def step(self) -> None:
        """One optimizer step done (call it after `optimizer.step()`)."""
        self.t += 1
        if self.t > self.total_steps and "past" not in self._said:
            self._said.add("past")
            warnings.warn(
                f"LearnedLoss: step {self.t} is past total_steps={self.total_steps}; the loss "
                "stays at the end of its schedule",
                stacklevel=2,
            )

    def observe(self, val_loss: float, val_acc: float, model: nn.Module | None = None) -> None:
        """What the teacher reads of the student at the end of a teacher step (online mode;
        ignored with a warning in schedule mode): its validation loss and accuracy, and with
        `model` the movement of its parameters since the last teacher step."""
        if self.mode == "schedule":
            if "observe" not in self._said:
                self._said.add("observe")
                warnings.warn("LearnedLoss: observe() is ignored in schedule mode", stacklevel=2)
            return
        self._observed = (float(val_loss), float(val_acc))
        if model is not None:
            now = [p.detach().clone() for p in model.parameters()]
            if self._snapshot is not None:
                self._moved = math.sqrt(
                    sum(float((a - b).pow(2).sum()) for a, b in zip(now, self._snapshot))
                )
            self._snapshot = now

    # -- the loss ---------------------------------------------------------------------------
    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        training = self.training and torch.is_grad_enabled()  # what counts as a training step
        if self._whole_call and self._cross_entropy_reads(logits, targets):
            self._ready(logits, training)
            if self._whole_call:  # still cross-entropy after this call's proposal
                return self._cross_entropy(logits, targets, training)
        shape = targets.shape if targets.ndim == logits.ndim - 1 else targets.shape[:1]
        logits, targets, kept = self._flat(logits, targets)
        if self.reduction == "none":  # each sample's share, 0 where its target is ignored
            if not len(targets):
                values = logits.sum(1) * 0.0
            else:
                values = self._loss_at(logits, targets, training)
            if kept is None:
                return values.reshape(shape)
            out = values.new_zeros(kept.shape)
            return out.masked_scatter(kept, values).reshape(shape)
        if kept is not None and len(targets) == 0 and self.reduction == "mean":
            return logits.sum() * math.nan  # every target ignored: as cross-entropy, no mean
        if len(targets) == 0:  # an empty batch: no loss, zero grads
            return logits.sum() * 0.0
        return self._loss_at(logits, targets, training)

    def _cross_entropy_reads(self, logits: Tensor, targets: Tensor) -> bool:
        """Whether `F.cross_entropy` takes this call whole (checks of metadata only): class
        indices of the logits' shape less C, the mean, no class weights, samples."""
        return (
            targets.ndim == logits.ndim - 1
            and logits.ndim >= 2
            and not targets.is_floating_point()
            and targets.dtype != torch.bool
            and self.reduction == "mean"
            and self.weight is None
            and self.ignore_index is not None
            and targets.numel() > 0
        )

    def _cross_entropy(self, logits: Tensor, targets: Tensor, training: bool) -> Tensor:
        """At cross-entropy's point the whole call is `F.cross_entropy`: no host work
        (docs/design.md §3). A target out of range is its own error on the CPU, reworded by
        the full check; on CUDA it is cross-entropy's device-side assert."""
        assert self.ignore_index is not None
        try:
            loss = F.cross_entropy(logits, targets, ignore_index=self.ignore_index)
        except (IndexError, RuntimeError):
            self._flat(logits, targets)  # raises the one clear error where a target is wrong
            raise
        if self.mode == "online" and training:  # the train loss the teacher reads (no sync)
            self._losses.append(loss.detach())
        return loss

    def _ready(self, logits: Tensor, training: bool) -> None:
        """This call's loss parameters (a proposal once per teacher step) bound to the
        logits' device and dtype."""
        start = min(self.t - self.t % self.k, self.total_steps)
        if self._params is None or (training and start != self._start):  # once per step
            self._propose(logits, start)
        assert self._params is not None
        if self._loss is None or self._cast != (logits.device, logits.dtype):
            self._cast = (logits.device, logits.dtype)
            self._at = [p.to(logits.device, logits.dtype) for p in self._params]
            self._loss = loss_fn(self.family, self._at, self.temperature, self.mix, self.composite)
            self._samples = None
            self._whole_call = self._loss is cross_entropy

    def _loss_at(self, logits: Tensor, targets: Tensor, training: bool) -> Tensor:
        """The loss of the flattened, kept samples at this step's loss parameters (float32
        logits under autocast, as `F.cross_entropy` computes there)."""
        if torch.is_autocast_enabled(logits.device.type):
            with torch.autocast(logits.device.type, enabled=False):
                return self._batch_loss(logits.float(), targets, training)
        return self._batch_loss(logits, targets, training)

    def _flat(self, logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """(B, C, d...) logits with (B, d...) targets as (B d..., C) and (B d...,); the
        samples whose target is `ignore_index` left out (and which were kept, or None)."""
        if logits.ndim > 2 and targets.ndim == logits.ndim - 1:
            logits = logits.movedim(1, -1).reshape(-1, logits.shape[1])
            targets = targets.reshape(-1)
        if logits.ndim != 2 or targets.shape[0] != logits.shape[0]:
            raise ValueError(
                f"LearnedLoss expects logits (B, C) and targets (B,) or (B, 1 + C), or logits "
                f"(B, C, d...) and targets (B, d...); got {tuple(logits.shape)} and "
                f"{tuple(targets.shape)}"
            )
        classes = logits.shape[1]
        if classes < 2:
            raise ValueError("LearnedLoss needs at least 2 classes (a pairwise loss)")
        if targets.ndim == 2 and targets.shape[1] != 1 + classes:
            raise ValueError(
                f"LearnedLoss reads (B, {targets.shape[1]}) targets as neither: pass class "
                f"indices (B,), or (B, 1 + C) = (B, {1 + classes}) label and model logits "
                "packed by l2t.losses.labels.pack (one-hot or probability targets are not read)"
            )
        if targets.ndim == 1 and (targets.is_floating_point() or targets.dtype == torch.bool):
            raise ValueError(
                f"LearnedLoss's hard targets are class indices (an integer tensor); got "
                f"{targets.dtype}"
            )
        if self.ignore_index is not None and targets.ndim == 1 and len(targets):
            # one host sync a call (ignore_index=None: none, and no range check on the host):
            # one op when every target is a class, the whole check only when one is not
            low, high = torch.stack(targets.aminmax()).tolist()
            if low >= 0 and high < classes:
                return logits, targets, None
            kept = targets != self.ignore_index
            outside = ((targets < 0) | (targets >= classes)) & kept
            all_kept, any_outside = torch.stack([kept.all(), outside.any()]).tolist()
            if any_outside:
                bad = targets[outside][:3].tolist()
                raise ValueError(
                    f"LearnedLoss: targets must be class indices in [0, {classes}) or "
                    f"ignore_index={self.ignore_index}; got {bad}"
                )
            if not all_kept:
                return logits[kept], targets[kept], kept
        return logits, targets, None

    def _batch_loss(self, logits: Tensor, targets: Tensor, training: bool) -> Tensor:
        self._ready(logits, training)
        assert self._loss is not None
        if self.reduction == "none" or self.weight is not None:
            return self._per_sample(logits, targets, training)
        loss = self._loss(logits, targets)
        if self.mode == "online" and training:  # the train loss the teacher reads (no sync)
            self._losses.append(loss.detach())
        return loss * len(targets) if self.reduction == "sum" else loss

    def _per_sample(self, logits: Tensor, targets: Tensor, training: bool) -> Tensor:
        """Class weights or `reduction="none"`: from the family's per-sample losses, whose
        mean is the batch loss."""
        if self._samples is None:  # once per teacher step and cast, as `_loss`
            settings = LossSettings(self.temperature, self.mix, self.composite)
            self._samples = FAMILIES[self.family].samples(self._at, settings)
        values = self._samples(logits, targets)
        if self.mode == "online" and training:  # the unweighted mean, as the teacher trained
            self._losses.append(values.detach().mean())
        if self.weight is not None:
            weights = self.weight.to(values)[labels_of(targets)]
            values = values * weights
            if self.reduction == "mean":  # as cross-entropy: the weights' sum normalises
                return values.sum() / weights.sum()
        if self.reduction == "sum":
            return values.sum()
        return values if self.reduction == "none" else values.mean()

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> LearnedLoss:
        """`.to()`, `.cuda()`, `.double()` move what the criterion holds besides the
        teacher's weights: its state, the loss parameters, the recorded losses."""
        super()._apply(fn, recurse)
        self._teacher_state = {k: fn(v) for k, v in self._teacher_state.items()}
        if self._params is not None:
            self._params = [fn(p) for p in self._params]
        self._losses = [fn(x) for x in self._losses]
        if self._snapshot is not None:
            self._snapshot = [fn(p) for p in self._snapshot]
        self._loss = self._samples = None
        return self

    def _propose(self, logits: Tensor, step: int) -> None:
        """The loss parameters of the teacher step starting at optimizer step `step`."""
        progress = step / self.total_steps
        unread = torch.zeros(len(FEATURE_NAMES))  # a schedule reads the progress only
        obs = Observation(unread, None, progress)
        if self.mode == "online":
            classes = logits.shape[1]
            # the mean of the losses it returned; a batch whose every target was ignored
            # returned NaN (cross-entropy's mean over no sample) and is not read
            mean = float(torch.stack(self._losses).float().nanmean()) if self._losses else None
            mean = None if mean is None or math.isnan(mean) else mean
            # before any observe(): the val loss is the train loss (ln C at the start), the
            # accuracy chance
            assumed = (mean if mean is not None else math.log(classes), 1.0 / classes)
            val_loss, val_acc = self._observed or assumed
            train = mean if mean is not None else val_loss
            k = len(self._losses) or 1
            moved = torch.tensor(self._moved / (self.lr * k))
            student = StudentState({}, {}, {}, step, torch.tensor(train), moved, torch.tensor(True))
            measured = features(
                student, torch.tensor(val_loss), torch.tensor(val_acc), self.total_steps,
                logits.shape[1],
            )  # fmt: skip
            obs = Observation(measured, None, progress)
        with torch.no_grad():
            params, self._teacher_state = self.teacher.propose(
                self.teacher.theta(), self._teacher_state, obs
            )
        self._params, self._start = [p.detach() for p in params], step
        self._loss, self._samples, self._losses = None, None, []

    # -- resume ----------------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "start": self._start,
            "params": self._params,
            "teacher_state": self._teacher_state,
            "losses": self._losses,
            "observed": self._observed,
            "moved": self._moved,
            "snapshot": self._snapshot,
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.t, self._params, self._loss = int(state["t"]), state["params"], None
        self._samples = None
        self._start = int(state["start"])
        self._teacher_state, self._losses = state["teacher_state"], list(state["losses"])
        self._observed, self._moved = state["observed"], float(state["moved"])
        self._snapshot = state["snapshot"]

"""`meta_trust` (issue 33): a weight per training sample from what a teacher can see of it —
the model's confidence and margin, the student's probability of the sample's label and
whether it agrees, the sample's loss — learned online by the one-step lookahead on the
trusted batch (Meta-Weight-Net's procedure, `l2t/methods/reweighting.py`), on the
composite's per-sample loss at the run's base point (docs/design.md §6).

Meta-Weight-Net's net sees the loss alone, which on an unlabeled pool cannot tell a wrong
pseudo-label the student has not fit from a hard right one; the model's margin and the
student's agreement can, in part. A sample's raw weight is FLOOR + (1 - FLOOR) 2 sigmoid(.),
normalised to mean 1 in the batch: a one-step lookahead over an unnormalised scale shrinks
the step (short-horizon bias; measured here: every weight fell to 2% within 3,000 steps,
right and wrong pseudo-labels alike, RESULTS.md), and the floor bounds how much of a step
one sample can take (L2RW's failure on KD's point). The net's output layer starts at zero:
every weight 1, the untrained row is the base point.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from l2t.engine.lifetime import Observation
from l2t.engine.student_state import SGDStep
from l2t.engine.task import Task
from l2t.losses.labels import labels_of, model_logits_of
from l2t.methods.margins import BatchIndex, MarginMemory, margin_on
from l2t.methods.reweighting import WEIGHT_NET_LR, BasePoint, Reweighted, lookahead

FEATURES = ("model_top", "model_margin", "student_p_label", "agrees", "log1p_loss")
HIDDEN = 16
FLOOR = 0.05  # the smallest raw weight: no sample above 2 / FLOOR = 40 times another's


def trust_features(logits: Tensor, targets: Tensor, losses: Tensor) -> Tensor:
    """(B, len(FEATURES)), detached: what the weight net sees of each sample."""
    model = model_logits_of(targets)
    if model is None:
        raise ValueError("meta_trust reads the model's logits: it needs distill.model")
    labels = labels_of(targets)
    top = model.detach().softmax(dim=1).topk(2, dim=1).values
    student = logits.detach().softmax(dim=1)
    p_label = student.gather(1, labels[:, None]).squeeze(1)
    agrees = (student.argmax(dim=1) == labels).to(student.dtype)
    columns = (top[:, 0], top[:, 0] - top[:, 1], p_label, agrees, losses.detach().log1p())
    return torch.stack(columns, dim=1)


def _trust_net(inputs: int) -> nn.Module:
    net = nn.Sequential(nn.Linear(inputs, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 1))
    last = net[-1]
    assert isinstance(last, nn.Linear)
    nn.init.zeros_(last.weight)  # the same weight for every sample: the base point
    nn.init.zeros_(last.bias)
    return net


class TrustWeighted(Reweighted):
    """The base point's per-sample loss weighted by the trust net, moved by the lookahead
    before each SGD step (then the step under the moved weights). With `history` the net
    also reads the student's mean margin on the sample's label so far (`meta_trust_aum`);
    with `prior` (a margin per training sample) a first round's, fixed (`meta_trust_aum2`)."""

    def __init__(
        self,
        task: Task,
        seed: int,
        base: BasePoint,
        history: bool = False,
        prior: Tensor | None = None,
    ) -> None:
        super().__init__(task, "l2rw", seed, base)  # the switch and the plain loss; no state
        margins = history or prior is not None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = _trust_net(len(FEATURES) + margins).to(task.device)
        self.adam = torch.optim.Adam(self.net.parameters(), lr=WEIGHT_NET_LR)
        self.index = BatchIndex(task, seed)
        self.memory = MarginMemory(len(task.splits.y_train), task.device) if history else None
        self.prior = prior
        self.last_weights: Tensor | None = None

    def propose(
        self, theta: dict[str, Tensor], state: dict[str, Tensor], obs: Observation
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        self.index.start(obs)
        return super().propose(theta, state, obs)

    def features(self, logits: Tensor, targets: Tensor, losses: Tensor) -> Tensor:
        """What the net sees of this SGD step's samples (the memory recorded first)."""
        features = trust_features(logits, targets, losses)
        if self.prior is not None:
            return torch.cat([features, self.prior[self.index.next()][:, None]], dim=1)
        if self.memory is None:
            return features
        index = self.index.next()
        self.memory.record(index, margin_on(logits, labels_of(targets)))
        return torch.cat([features, self.memory.mean(index)[:, None]], dim=1)

    def weights(self, features: Tensor) -> Tensor:
        """(B,) mean 1: scale-free, so the lookahead moves only who gets the step."""
        raw = FLOOR + (1 - FLOOR) * 2 * torch.sigmoid(self.net(features)).squeeze(1)
        return raw / raw.mean()

    def objective(self, step: SGDStep) -> Tensor:
        logits = step.forward(step.params, step.x)
        losses = self.samplewise(logits, step.y)
        features = self.features(logits, step.y, losses)
        weighted = (self.weights(features) * losses).mean()
        meta = lookahead(step.forward, step.params, weighted, step.lr, step.x_val, step.y_val)
        self.adam.zero_grad()
        meta.backward(inputs=list(self.net.parameters()))
        self.adam.step()
        with torch.no_grad():
            w = self.weights(features)
        self.last_weights = w  # the step's weights (mean 1), for diagnostics
        return (w * losses).mean()

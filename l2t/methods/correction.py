"""`meta_correct` (issue 33): label correction in the manner of MLC (Meta Label Correction,
Zheng et al., AAAI 2021) on an unlabeled pool, learned online by the one-step lookahead on
the trusted batch (`l2t/methods/reweighting.py`; docs/design.md §6).

A pool sample's loss moves from the base point's `l_i` towards cross-entropy on a corrected
label: `(1 - c_i) l_i + c_i CE(z_i, q_i)`. A correction net reads what a teacher sees of the
sample (`meta_trust`'s features, the model's and the student's class probabilities and the
pseudo-label) and sets both the share `c_i = clamp(u_i, 0, 1)` and the corrected label
`q_i = softmax(log m_i + v_i)`, which starts at the model's probabilities `m_i` (T = 1;
chosen on validation over the student's own prediction, soft bootstrapping: RESULTS.md).
Where `meta_trust` can only take a wrong pseudo-label's step away, a correction can turn it
into a right one's — the oracle rows put most of issue 33's headroom there (`oracle_labels`
over `oracle_drop`). Labeled samples keep their loss. The net's output layer starts at zero:
`c_i = 0`, the untrained row is the base point bit for bit (a test).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l2t.engine.lifetime import Observation
from l2t.engine.student_state import SGDStep
from l2t.engine.task import Task
from l2t.losses.labels import labels_of, model_logits_of
from l2t.methods.margins import BatchIndex
from l2t.methods.reweighting import WEIGHT_NET_LR, BasePoint, Reweighted, lookahead
from l2t.methods.trust import FEATURES, HIDDEN, trust_features


def correction_features(logits: Tensor, targets: Tensor, losses: Tensor) -> Tensor:
    """(B, len(FEATURES) + 3 C), detached: `meta_trust`'s features, then the model's and
    the student's class probabilities and the pseudo-label one-hot."""
    model = model_logits_of(targets)
    assert model is not None, "trust_features refuses targets without the model's logits"
    classes = logits.shape[1]
    columns = (
        trust_features(logits, targets, losses),
        model.detach().softmax(dim=1),
        logits.detach().softmax(dim=1),
        F.one_hot(labels_of(targets), classes).to(logits.dtype),
    )
    return torch.cat(columns, dim=1)


class Corrected(Reweighted):
    """The base point's per-sample loss with each pool sample's moved towards its corrected
    label by the correction net, the net moved by the lookahead before each SGD step (then
    the step under the moved net)."""

    def __init__(self, task: Task, seed: int, base: BasePoint) -> None:
        super().__init__(task, "l2rw", seed, base)  # the switch and the plain loss; no state
        classes = task.splits.num_classes
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = nn.Sequential(
                nn.Linear(len(FEATURES) + 3 * classes, HIDDEN),
                nn.Tanh(),
                nn.Linear(HIDDEN, 1 + classes),
            ).to(task.device)
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)  # c_i = 0 for every sample: the base point
        nn.init.zeros_(last.bias)
        self.adam = torch.optim.Adam(self.net.parameters(), lr=WEIGHT_NET_LR)
        self.index = BatchIndex(task, seed)
        self.pool = range(task.splits.labeled, task.splits.labeled + task.splits.pool)
        self.last_share: Tensor | None = None  # the last step's c_i, for diagnostics
        self.last_label: Tensor | None = None  # ... and its corrected labels' top class

    def propose(
        self, theta: dict[str, Tensor], state: dict[str, Tensor], obs: Observation
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        self.index.start(obs)
        return super().propose(theta, state, obs)

    def corrected(
        self,
        out: Tensor,
        pooled: Tensor,
        logits: Tensor,
        model_log_p: Tensor,
        losses: Tensor,
        trial: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(B,) losses under the net's output `out`, the shares `c_i` (0 off the pool) and
        the corrected labels (B, C), from the model's log-probabilities (T = 1).
        The lookahead's `trial` reads the share unclamped below (a negative one leans away
        from the corrected label): clamped at 0 there, a net the lookahead once pushed below
        zero on every sample would get no gradient again; the real step clamps to [0, 1]."""
        share = (out[:, 0].clamp(max=1.0) if trial else out[:, 0].clamp(0.0, 1.0)) * pooled
        label = (model_log_p + out[:, 1:]).softmax(dim=1)
        own = -(label * logits.log_softmax(dim=1)).sum(dim=1)
        return (1 - share) * losses + share * own, share, label

    def objective(self, step: SGDStep) -> Tensor:
        logits = step.forward(step.params, step.x)
        losses = self.samplewise(logits, step.y)
        index = self.index.next()
        pooled = ((index >= self.pool.start) & (index < self.pool.stop)).to(losses.dtype)
        model = model_logits_of(step.y)
        assert model is not None, "meta_correct reads the model's logits: it needs distill.model"
        model_log_p = model.detach().log_softmax(dim=1)
        features = correction_features(logits, step.y, losses)
        trial, _, _ = self.corrected(self.net(features), pooled, logits, model_log_p, losses, True)
        meta = lookahead(step.forward, step.params, trial.mean(), step.lr, step.x_val, step.y_val)
        self.adam.zero_grad()
        meta.backward(inputs=list(self.net.parameters()))
        self.adam.step()
        with torch.no_grad():
            out = self.net(features)
        loss, self.last_share, label = self.corrected(out, pooled, logits, model_log_p, losses)
        self.last_label = label.argmax(dim=1)
        return loss.mean()

"""What `importance_kd` gives the pool (issue 33, RESULTS.md): alpha(x), the model's accuracy
at its margin fit on the trusted split (`l2t/methods/slam.py` `fit_alpha`), its mean on the
right and on the wrong pseudo-labels — over the whole pool and each half of the model's
margin — the share of the pool's weight the wrong ones keep, and its AUC for "the
pseudo-label is right" beside the margin's. Reads the pool's hidden labels, as a diagnostic
may; trains nothing.

    python scripts/importance_weights.py [config=PATH] [key=value ...]
    e.g. python scripts/importance_weights.py config=configs/mnist1d_unlabeled.yaml \
        distill.model=runs/unlabeled/model/model.pt
"""

from __future__ import annotations

import sys

import torch
from sklearn.metrics import roc_auc_score

from l2t.config import load_config, parts
from l2t.data.distill import load_model, logits_of
from l2t.io.threads import configure
from l2t.methods.slam import fit_alpha, margins


def main(argv: list[str]) -> None:
    given = [a for a in argv if a.startswith("config=")]
    config = given[-1].removeprefix("config=") if given else "configs/mnist1d_unlabeled.yaml"
    cfg = load_config(config, [a for a in argv if not a.startswith("config=")])
    configure(1)
    splits = parts.splits(cfg)
    if splits.hidden_labels is None or splits.model_logits is None:
        raise SystemExit("set unlabeled=N and distill.model=PATH: there is no pool to read")
    model, _ = load_model(cfg.distill.model, splits)
    with torch.no_grad():
        alpha = fit_alpha(logits_of(model, splits.x_val), splits.y_val)
    pool = splits.model_logits[splits.labeled :]
    right = splits.y_train[splits.labeled :] == splits.hidden_labels
    margin = margins(pool)
    weight = alpha(margin)
    levels = ", ".join(f"{v:.2f}" for v in alpha.values.tolist())
    print(f"alpha: {len(alpha.values)} levels on the trusted split ({levels})")
    print(f"pool {len(pool)}: wrong pseudo-labels {(~right).float().mean():.1%}, their share of")
    print(f"  the pool's weight {weight[~right].sum() / weight.sum():.1%}")
    low = margin <= margin.median()
    for name, part in (("whole pool", torch.ones_like(low)), ("low margin", low), ("high", ~low)):
        r, w = weight[part & right].mean(), weight[part & ~right].mean()
        print(f"{name:>10}: mean alpha on right {r:.3f}, on wrong {w:.3f}")
    for name, score in (("alpha", weight), ("model margin", margin)):
        print(f"AUC of {name}: {roc_auc_score(right.numpy(), score.numpy()):.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])

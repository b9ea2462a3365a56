"""Student seeds that never collide.

Every student l2t trains is named by (run seed, role, index): the training students of the
estimators and episodes, the held-out selection students, the evaluation students (the
final one and `compare`'s), the students that tune baselines, and the distillation models.
The three are packed into one integer injectively, so two different students never share a
seed, across roles and across runs — the earlier `seed * 1000 + offset` gave run 5's
training students to run 0's selection (docs/design.md §2).
"""

from __future__ import annotations

ROLES = ("train", "selection", "evaluation", "tuning", "model")
INDEX_BITS = 20  # students per role and run: up to 2**20
MAX_RUN_SEED = 2**20  # run seeds 0 .. 2**20 - 1; a student seed stays below 2**43


def student_seed(run_seed: int, role: str, index: int) -> int:
    """The seed of student `index` of `role` in the run of `run_seed`."""
    if not 0 <= run_seed < MAX_RUN_SEED:
        raise ValueError(f"run seed must be in [0, {MAX_RUN_SEED}); got {run_seed}")
    if not 0 <= index < 2**INDEX_BITS:
        raise ValueError(f"student index must be in [0, 2**{INDEX_BITS}); got {index}")
    return ((run_seed * len(ROLES) + ROLES.index(role)) << INDEX_BITS) + index


def student_index(seed: int) -> int:
    """The index a student seed was made from (`student_seed`'s inverse on it)."""
    return seed & (2**INDEX_BITS - 1)

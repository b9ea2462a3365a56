"""Methods around a teacher: the base point chosen on validation, the reweighting baselines,
and training the model a student distills from (docs/design.md §6, §8)."""

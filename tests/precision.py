"""Data in float64, for tests that compare two computations summing in different orders
(the `float64` fixture in conftest.py says why)."""

import dataclasses

from l2t.data.splits import Splits


def as_float64(splits: Splits) -> Splits:
    """`splits` with float64 inputs (`l2t.data.datasets` loads them as float32)."""
    fields = ("x_train", "x_val", "x_test")
    return dataclasses.replace(splits, **{k: getattr(splits, k).double() for k in fields})

from l2t.bench import saved_tensor_bytes
from l2t.config import from_dict


def test_unroll_memory_grows_linearly_in_k():
    cfg = from_dict({"steps": 40, "loss": {"init_steps": 10}})
    b5, b10, b20 = (saved_tensor_bytes(cfg, k) for k in (5, 10, 20))
    per_step_low, per_step_high = (b10 - b5) / 5, (b20 - b10) / 10
    assert b5 < b10 < b20
    assert abs(per_step_high - per_step_low) / per_step_low < 0.05

"""One meta-training run over several processes, GPUs or machines (docs/design.md §8).

`torchrun --nproc_per_node=N -m l2t train-teacher ...` starts N processes and tells each its
rank in the environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); `init` joins them
with gloo on CPU and NCCL on GPUs. Each process runs its share of the population
(`Estimator.members`); once per teacher update the estimates are summed here, so every
process applies the same Adam step and holds the same teacher. Without torchrun a run is
rank 0 of 1 and nothing here communicates.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def init(device: torch.device) -> tuple[int, int]:
    """(rank, world size): join the process group torchrun describes, or (0, 1) alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def sum_(tensors: list[Tensor]) -> list[Tensor]:
    """The element-wise sum over processes of each tensor (one all-reduce for them all);
    every process receives the same bits."""
    if world() == 1 or not tensors:
        return tensors
    flat = torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])
    dist.all_reduce(flat)
    out, at = [], 0
    for t in tensors:
        out.append(flat[at : at + t.numel()].view(t.shape).to(t.dtype))
        at += t.numel()
    return out


def from_first(tensors: list[Tensor]) -> None:
    """Every process takes rank 0's values (in place): one start for all of them."""
    if world() > 1:
        for t in tensors:
            dist.broadcast(t, 0)


def gather(obj: Any) -> list[Any]:
    """Every process's `obj`, in rank order, on every process."""
    if world() == 1:
        return [obj]
    objects: list[Any] = [None] * world()
    dist.all_gather_object(objects, obj)
    return objects


def check_same(tensors: list[Tensor], what: str) -> None:
    """Stop if the processes hold different `tensors` (they must agree bit for bit)."""
    if world() == 1:
        return
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    digests = gather(digest.hexdigest())
    if len(set(digests)) > 1:
        raise RuntimeError(f"the processes hold different {what}: {digests}")


def close() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()

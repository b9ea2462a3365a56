"""A loss schedule: the DLN weights a teacher produced, by training progress. Replaying it
trains a new student under the same sequence of losses with no meta-gradients at all."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from l2t.io.checkpoint import Fields, atomic_save, expect, load_checkpoint


@dataclass
class Schedule:
    phi_shapes: list[tuple[int, ...]]
    progress: list[float] = field(default_factory=list)
    phi: list[Tensor] = field(default_factory=list)  # flat DLN weights, one per record

    def record(self, progress: float, phi: list[Tensor]) -> None:
        """Record the weights used from `progress` (fraction of the budget) onwards."""
        self.progress.append(progress)
        self.phi.append(torch.cat([p.detach().flatten() for p in phi]).cpu())

    def phi_at(self, progress: float, device: str | torch.device = "cpu") -> list[Tensor]:
        """The weights in use at `progress`: the last record at or before it."""
        if not self.phi:
            raise ValueError("the schedule is empty")
        i = max(bisect.bisect_right(self.progress, progress + 1e-9) - 1, 0)
        sizes = [int(torch.Size(s).numel()) for s in self.phi_shapes]
        flat = self.phi[i].to(device)
        return [c.view(s) for c, s in zip(flat.split(sizes), self.phi_shapes)]

    def phi_sets(self) -> list[list[Tensor]]:
        """Every record's weights, shaped like the loss network's."""
        return [self.phi_at(p) for p in self.progress]

    def save(self, path: str | Path) -> None:
        atomic_save(
            {
                "phi_shapes": self.phi_shapes,
                "progress": torch.tensor(self.progress),
                "phi": torch.stack(self.phi) if self.phi else torch.zeros(0),
            },
            path,
        )

    @classmethod
    def load(cls, path: str | Path) -> Schedule:
        fields: Fields = {
            "phi_shapes": (list, tuple),
            "progress": torch.Tensor,
            "phi": torch.Tensor,
        }
        data = expect(load_checkpoint(path), path, "a loss schedule of l2t (schedule.pt)", fields)
        return cls(
            [tuple(s) for s in data["phi_shapes"]],
            data["progress"].tolist(),
            list(data["phi"]),
        )

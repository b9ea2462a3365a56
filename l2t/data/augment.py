"""Crop and flip for image students (docs/design.md §2): each training image shifted by up
to `padding` pixels with zero fill (a random crop of the padded image) and flipped left to
right with probability 1/2 — the augmentation the CIFAR literature trains with, so l2t's
CIFAR numbers compare with it. Drawn from the batch's own generator, so a batch stays a pure
function of (student seed, teacher step) and every path sees the same images."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PADDING = 4  # pixels: the CIFAR convention (32 x 32 images cropped from 40 x 40)


def crop_flip(x: Tensor, generator: torch.Generator, padding: int = PADDING) -> Tensor:
    """(N, C, H, W) images, each cropped from its zero-padded self at a random offset and
    flipped left-right with probability 1/2 (the draws on the CPU, from `generator`)."""
    n, _, h, w = x.shape
    dy = torch.randint(2 * padding + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(2 * padding + 1, (n,), generator=generator).to(x.device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (N, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    index = torch.arange(n, device=x.device)[:, None, None]
    return padded[index, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()

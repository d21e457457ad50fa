"""Training-time observation noise in the observations' own units (shared by every family).

``config.state_noise = {"joint_pos": (0.005,) * 7 + (0.001,)}`` adds N(0, std^2) to each
element of that key (rad for arm joints, m for the finger) in every training batch, before
normalization and before a relative-action target is formed from the newest ``joint_pos``:
the policy then learns the chunk relative to the reading it will really be given, as a real
encoder or a perception stack delivers it. One std broadcasts over the key's elements.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from rosmind.errors import SpecError


def check_state_noise(noise: Mapping[str, Sequence[float]], obs_keys: Sequence[str],
                      obs_shapes: Mapping[str, Sequence[int]], where: str) -> dict[str, tuple[float, ...]]:
    """Validated copy of ``noise``: known low-dim keys, finite stds >= 0, 1 or per-element."""
    out = {}
    for key, std in noise.items():
        std = tuple(float(s) for s in std)
        if key not in obs_keys or key.startswith("camera/"):
            raise SpecError(f"{where}.state_noise: {key!r} is not a low-dim obs key of {list(obs_keys)}")
        n = math.prod(obs_shapes.get(key, ()))
        if len(std) not in (1, n):
            raise SpecError(f"{where}.state_noise[{key!r}]: expected 1 or {n} standard deviations, got {len(std)}")
        if not all(math.isfinite(s) and s >= 0 for s in std):
            raise SpecError(f"{where}.state_noise[{key!r}]: standard deviations must be finite and >= 0, got {std}")
        out[key] = std
    return out


def add_state_noise(batch: dict[str, torch.Tensor], noise: Mapping[str, Sequence[float]],
                    generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """A copy of ``batch`` (obs keys ``[B, To, *shape]``) with ``noise`` added; others untouched."""
    if not noise:
        return batch
    out = dict(batch)
    for key, std in noise.items():
        x = batch[key].float()
        s = torch.tensor(std, dtype=x.dtype).to(x.device)
        flat = x.reshape(*x.shape[:2], -1)
        eps = torch.randn(flat.shape, generator=generator).to(x.device)
        out[key] = (flat + eps * s).reshape(x.shape)
    return out

"""Min-max normalizer living inside a policy (saved with its weights as buffers).

Each low-dimensional key is mapped element-wise from ``[min, max]`` (fitted on the dataset)
to ``[-1, 1]``, as in diffusion_policy's ``LinearNormalizer(mode="limits")``. Elements whose
range is below ``range_eps`` (a constant joint, a fixed goal) map to 0 instead of dividing by
~0. An unfitted normalizer is the identity (min -1, max 1).

``min_range`` (per key) floors the range an element is divided by: an element that barely
varied in the demonstrations (a gripper quaternion component spanning 0.001, a finger joint)
is otherwise amplified by ``2 / range``, so a physically negligible deviation at run time (one
degree of tilt) becomes an input far outside anything seen in training. With a floor, such an
element maps to ``(x - midpoint) * 2 / min_range``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _safe(key: str) -> str:
    return key.replace("/", "__").replace(".", "_")


class Normalizer(nn.Module):
    """``normalize(key, x[..., *shape])`` / ``unnormalize``; ``shapes`` fixes keys and shapes."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], range_eps: float = 1e-4,
                 min_range: dict[str, float] | None = None, clip: dict[str, float] | None = None):
        super().__init__()
        self.keys = tuple(shapes)
        self.shapes = {k: tuple(s) for k, s in shapes.items()}
        self.range_eps = range_eps
        self.min_range = {k: float(v) for k, v in (min_range or {}).items() if v > 0}
        self.clip = {k: float(v) for k, v in (clip or {}).items()}  # key -> normalized values saturate at +-v
        for k, s in self.shapes.items():
            self.register_buffer(f"{_safe(k)}_min", -torch.ones(s))
            self.register_buffer(f"{_safe(k)}_max", torch.ones(s))

    def bounds(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"{_safe(key)}_min"), getattr(self, f"{_safe(key)}_max")

    def fit(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        """``stats[key] = {"min": [*shape], "max": [*shape]}`` for every key of this normalizer."""
        for k in self.keys:
            if k not in stats:
                raise KeyError(f"normalizer stats lack key {k!r}; have {sorted(stats)}")
            lo, hi = self.bounds(k)
            for buf, name in ((lo, "min"), (hi, "max")):
                v = torch.as_tensor(np.asarray(stats[k][name]), dtype=torch.float32).reshape(self.shapes[k])
                if not torch.isfinite(v).all():
                    raise ValueError(f"normalizer stats for {k!r} ({name}) are not finite")
                buf.copy_(v)

    def _scale_offset(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = self.bounds(key)
        rng = hi - lo
        floor = self.min_range.get(key)
        if floor is not None:
            scale = 2.0 / rng.clamp(min=floor)
            return scale, -scale * (lo + hi) / 2
        flat = rng < self.range_eps
        scale = torch.where(flat, torch.ones_like(rng), 2.0 / torch.where(flat, torch.ones_like(rng), rng))
        offset = torch.where(flat, -lo, -1.0 - scale * lo)
        return scale, offset

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        scale, offset = self._scale_offset(key)
        y = x * scale + offset
        c = self.clip.get(key)
        return y if c is None else y.clamp(-c, c)

    def unnormalize(self, key: str, y: torch.Tensor) -> torch.Tensor:
        scale, offset = self._scale_offset(key)
        return (y - offset) / scale

    def unnormalize_index(self, key: str, y: torch.Tensor, index: int) -> torch.Tensor:
        """``unnormalize`` of one entry along the key's first dimension (row ``index`` of a
        per-row normalized chunk): ``y`` has the shape of ``key``'s shape without its first axis."""
        scale, offset = self._scale_offset(key)
        return (y - offset[index]) / scale[index]

    def stats(self) -> dict[str, dict[str, list]]:
        """JSON-ready ``{key: {"min": [...], "max": [...]}}`` (for the checkpoint manifest)."""
        return {k: {"min": self.bounds(k)[0].tolist(), "max": self.bounds(k)[1].tolist()} for k in self.keys}


OBS_CLIP = 1.5  # normalized observations of quantile-limited keys saturate here


def quantile_clip(keys, quantile: float) -> dict[str, float] | None:
    """``Normalizer(clip=...)`` for observation ``keys`` normalized at ``quantile`` (none at 0)."""
    return {k: OBS_CLIP for k in keys} if quantile > 0 else None


def quantile_limits(stats: dict[str, dict[str, np.ndarray]], keys, quantile: float) -> dict:
    """``stats`` with ``min``/``max`` of ``keys`` replaced by their ``quantile`` and
    ``1 - quantile`` quantiles (``SequenceDataset.stats(quantile=...)``); as is for 0."""
    if quantile <= 0:
        return stats
    out = dict(stats)
    for k in keys:
        if k not in stats:
            continue
        if "q_min" not in stats[k] or float(np.asarray(stats[k].get("quantile", -1))) != quantile:
            raise KeyError(f"normalizer: obs_quantile={quantile} needs the dataset's {quantile} quantiles of {k!r} "
                           "(SequenceDataset.stats(quantile=...), as rosmind train makes them)")
        out[k] = {**stats[k], "min": stats[k]["q_min"], "max": stats[k]["q_max"]}
    return out

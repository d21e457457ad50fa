"""Observation assembly: timestamped samples per key -> the ``[To, ...]`` history a policy reads.

Pure Python (no ROS): ``policy_node`` feeds it message stamps and numpy values, tests feed
it fake stamps. Time is whatever clock the stamps use (sim time in lockstep).

    asm = ObservationAssembler(["joint_pos", "camera/wrist/rgb"], n_obs_steps=2,
                               max_age={"joint_pos": 0.0, "camera/wrist/rgb": 0.25}, period=0.05)
    asm.add("joint_pos", 1.00, q)          # stamp in seconds, value [D]
    asm.ready(1.00)                        # every key has a fresh-enough sample for t=1.00
    asm.history(1.00)                      # {"joint_pos": [2, D], "camera/wrist/rgb": [2, H, W, 3]}

Freshness: a key is fresh at ``t`` when it has a sample with ``t - max_age[key] <= stamp <= t``.
Per-tick topics (``max_age`` 0) therefore need a sample carrying the tick's own stamp. A key
with a value in ``defaults`` (a command input such as ``cmd_vel``) never holds a tick back:
where it is not fresh, its rows read the default (a robot told nothing stands still).

History with ``period``: row ``i`` (oldest first) is the newest sample at or before
``t - (To - 1 - i) * period``, so rows are aligned to control ticks whatever each topic's
rate; before the first sample of an episode the earliest sample is repeated (padding by
repetition). Without ``period`` the rows are simply the ``To`` newest samples at or before ``t``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping

import numpy as np

from rosmind.errors import SpecError

# Stamps within this many seconds are the same tick (float seconds from int sec/nanosec).
STAMP_EPS = 1e-6


class ObservationAssembler:
    def __init__(self, keys: Iterable[str], n_obs_steps: int,
                 max_age: float | Mapping[str, float] = 0.0, period: float | None = None,
                 capacity: int | None = None, defaults: Mapping[str, np.ndarray] | None = None):
        self.keys = tuple(keys)
        self.defaults = {k: np.asarray(v) for k, v in (defaults or {}).items()}
        if set(self.defaults) - set(self.keys):
            raise SpecError(f"ObservationAssembler.defaults: keys {sorted(set(self.defaults) - set(self.keys))} "
                            f"are not observation keys {list(self.keys)}")
        if not self.keys:
            raise SpecError("ObservationAssembler: needs at least one observation key")
        if n_obs_steps < 1:
            raise SpecError(f"ObservationAssembler.n_obs_steps: must be >= 1, got {n_obs_steps}")
        if period is not None and not (math.isfinite(period) and period > 0):
            raise SpecError(f"ObservationAssembler.period: must be a positive number, got {period!r}")
        if isinstance(max_age, Mapping):
            unknown = set(max_age) - set(self.keys)
            if unknown:
                raise SpecError(f"ObservationAssembler.max_age: keys {sorted(unknown)} are not "
                                f"observation keys {list(self.keys)}")
            ages = {k: float(max_age.get(k, 0.0)) for k in self.keys}
        else:
            ages = dict.fromkeys(self.keys, float(max_age))
        for k, a in ages.items():
            if not (math.isfinite(a) and a >= 0):
                raise SpecError(f"ObservationAssembler.max_age[{k!r}]: must be >= 0 seconds, got {a!r}")
        self.max_age = ages
        self.n_obs_steps = n_obs_steps
        self.period = period
        # Enough for To control ticks of a topic several times faster than control.
        self.capacity = capacity or 8 * n_obs_steps + 8
        self._stamps: dict[str, list[float]] = {k: [] for k in self.keys}
        self._values: dict[str, list[np.ndarray]] = {k: [] for k in self.keys}

    def reset(self) -> None:
        """Forget every sample (new episode)."""
        for k in self.keys:
            self._stamps[k].clear()
            self._values[k].clear()

    def add(self, key: str, stamp: float, value: np.ndarray) -> None:
        """Store one sample. A sample with the stamp of a stored one replaces it; one older
        than the newest is inserted in order (topics are not ordered across publishers)."""
        if key not in self._stamps:
            raise SpecError(f"ObservationAssembler.add: {key!r} is not one of {list(self.keys)}")
        stamps, values = self._stamps[key], self._values[key]
        stamp = float(stamp)
        i = bisect.bisect_left(stamps, stamp - STAMP_EPS)
        if i < len(stamps) and abs(stamps[i] - stamp) <= STAMP_EPS:
            values[i] = np.asarray(value)
            return
        stamps.insert(i, stamp)
        values.insert(i, np.asarray(value))
        if len(stamps) > self.capacity:
            del stamps[0], values[0]

    def _latest_at(self, key: str, t: float) -> int:
        """Index of the newest sample with stamp <= t, or -1."""
        return bisect.bisect_right(self._stamps[key], t + STAMP_EPS) - 1

    def is_fresh(self, key: str, t: float, max_age: float | None = None) -> bool:
        i = self._latest_at(key, t)
        age = self.max_age[key] if max_age is None else max_age
        return i >= 0 and self._stamps[key][i] >= t - age - STAMP_EPS

    def stale(self, t: float, max_age: Mapping[str, float] | None = None) -> list[str]:
        """Keys without a fresh sample at time ``t``, in key order; ``max_age`` overrides the
        configured ages of some keys for this call (e.g. a camera's schedule in lockstep)."""
        over = max_age or {}
        return [k for k in self.keys if k not in self.defaults and not self.is_fresh(k, t, over.get(k))]

    def ready(self, t: float, max_age: Mapping[str, float] | None = None) -> bool:
        return not self.stale(t, max_age)

    def has_any(self, key: str) -> bool:
        return bool(self._stamps[key])

    def stamp_at(self, key: str, t: float) -> float | None:
        """Stamp of the newest sample of ``key`` at or before ``t`` (the one ``history`` uses last)."""
        i = self._latest_at(key, t)
        return self._stamps[key][i] if i >= 0 else None

    def newest_stamp(self, key: str) -> float | None:
        s = self._stamps[key]
        return s[-1] if s else None

    def _value_or_default(self, key: str, t: float) -> np.ndarray:
        i = self._latest_at(key, t)
        fresh = i >= 0 and self._stamps[key][i] >= t - self.max_age[key] - STAMP_EPS
        return self._values[key][i] if fresh else self.defaults[key]

    def history(self, t: float) -> dict[str, np.ndarray]:
        """``{key: [To, *shape]}`` oldest first, for observation time ``t``.

        Raises ``SpecError`` if a key has no sample at or before ``t`` (call ``ready`` first).
        """
        out = {}
        to = self.n_obs_steps
        for k in self.keys:
            last = self._latest_at(k, t)
            if k in self.defaults:
                out[k] = np.stack([self._value_or_default(k, t - (to - 1 - i) * (self.period or 0.0))
                                   for i in range(to)])
                continue
            if last < 0:
                raise SpecError(f"ObservationAssembler.history: no sample of {k!r} at or before t={t:.6f}")
            values = self._values[k]
            if self.period is None:
                idx = [max(0, last - (to - 1 - i)) for i in range(to)]
            else:
                idx = [max(0, self._latest_at(k, t - (to - 1 - i) * self.period)) for i in range(to)]
            out[k] = np.stack([values[i] for i in idx])
        return out

"""Fault injection for one topic of the running graph (issue 18): the core of
``rosmind_ros.fault_proxy``, free of ROS so it is tested with a fake clock.

A proxy sits between a publisher and its subscribers (the subscribers' name remapped onto the
proxy's output) and, while ``active``, does one ``kind`` of harm to what passes:

- ``drop``: each message is lost with probability ``rate``;
- ``delay``: each message goes out ``delay_s`` (+ uniform ``[0, jitter_s]``) late;
- ``reorder``: a message is held (probability ``rate``) and sent right after the next one;
- ``duplicate``: a message is sent twice (probability ``rate``);
- ``freeze``: the first message after activation is sent again in place of every later one
  (a frozen camera: same pixels, same stamp);
- ``nan`` / ``inf``: one value of the message becomes NaN / +inf (probability ``rate``);
- ``out_of_limits``: one joint is set 0.5 rad beyond its upper limit at every point;
- ``jump``: one joint is offset by 0.5 rad at every point (a step no joint can follow);
- ``stamp_offset``: the message's time (``header.stamp``, or a ``/clock`` message's clock) is
  moved by ``offset_s`` (a clock that jumps, a sensor whose stamps lag or lead).

The value faults change positions (``corrupt_positions``) or stamps; how a message's positions
and stamps are read and written is the proxy's business. Inactive, everything passes at once and unchanged.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rosmind.errors import SpecError

TIMING_KINDS = ("drop", "delay", "reorder", "duplicate", "freeze")
VALUE_KINDS = ("nan", "inf", "out_of_limits", "jump")
STAMP_KINDS = ("stamp_offset",)
KINDS = ("none", *TIMING_KINDS, *VALUE_KINDS, *STAMP_KINDS)
LIMIT_EXCESS_RAD = 0.5  # out_of_limits: this far past the upper limit; jump: this big a step


@dataclass
class FaultConfig:
    kind: str = "none"
    rate: float = 1.0  # probability per message (drop, reorder, duplicate and the value faults)
    delay_s: float = 0.0  # delay: added latency
    jitter_s: float = 0.0  # delay: plus uniform [0, jitter_s]
    offset_s: float = 0.0  # stamp_offset: seconds added to each message's time (negative: back)
    seed: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise SpecError(f"FaultConfig.kind: unknown fault {self.kind!r}; known: {', '.join(KINDS)}")
        if not (math.isfinite(self.rate) and 0.0 <= self.rate <= 1.0):
            raise SpecError(f"FaultConfig.rate: a probability in [0, 1], got {self.rate}")
        for name in ("delay_s", "jitter_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0.0 <= v <= 60.0):
                raise SpecError(f"FaultConfig.{name}: seconds in [0, 60], got {v}")
        if not (math.isfinite(self.offset_s) and abs(self.offset_s) <= 3600.0):
            raise SpecError(f"FaultConfig.offset_s: seconds in [-3600, 3600], got {self.offset_s}")


def corrupt_positions(points: np.ndarray, kind: str, upper: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``points[N, D]`` (or ``[D]``) with the value fault ``kind`` applied to one random joint."""
    out = np.array(points, dtype=np.float64, copy=True)
    flat = out.reshape(-1, out.shape[-1])
    j = int(rng.integers(flat.shape[1]))
    if kind == "nan":
        flat[int(rng.integers(flat.shape[0])), j] = np.nan
    elif kind == "inf":
        flat[int(rng.integers(flat.shape[0])), j] = np.inf
    elif kind == "out_of_limits":
        flat[:, j] = upper[j] + LIMIT_EXCESS_RAD
    elif kind == "jump":
        flat[:, j] += LIMIT_EXCESS_RAD
    else:
        raise SpecError(f"corrupt_positions: {kind!r} is not a value fault ({', '.join(VALUE_KINDS)})")
    return out


class FaultInjector:
    """``push(msg, now)`` one message in; ``due(now)`` the messages to send by then, in order.
    ``corrupt(msg, kind, rng)`` returns a corrupted copy (only the value faults call it)."""

    def __init__(self, config: FaultConfig, corrupt: Callable[[Any, str, np.random.Generator], Any] | None = None):
        self.config = config
        self.corrupt = corrupt
        self.rng = np.random.default_rng(config.seed)
        self.active = False
        self.counts = {"received": 0, "sent": 0, "injected": 0}
        self._queue: list[tuple[float, int, Any]] = []
        self._order = itertools.count()
        self._held: Any = None
        self._frozen: Any = None

    def set_active(self, active: bool) -> None:
        self.active = bool(active)
        self._frozen = None
        if not self.active and self._held is not None:  # a held (reordered) message is not lost
            self._queue_out(self._held, -math.inf)
            self._held = None

    def _queue_out(self, msg: Any, at: float) -> None:
        heapq.heappush(self._queue, (at, next(self._order), msg))

    def _hit(self) -> bool:
        return bool(self.rng.random() < self.config.rate)

    def push(self, msg: Any, now: float) -> bool:
        """Take one message; True when a fault was done to it."""
        self.counts["received"] += 1
        c, kind = self.config, self.config.kind
        if not self.active or kind == "none":
            self._queue_out(msg, now)
            return False
        hit = False
        if kind == "drop":
            hit = self._hit()
            if not hit:
                self._queue_out(msg, now)
        elif kind == "delay":
            hit = True
            self._queue_out(msg, now + c.delay_s + (self.rng.uniform(0.0, c.jitter_s) if c.jitter_s else 0.0))
        elif kind == "reorder":
            if self._held is not None:
                self._queue_out(msg, now)
                self._queue_out(self._held, now)
                self._held = None
            elif self._hit():
                self._held, hit = msg, True
            else:
                self._queue_out(msg, now)
        elif kind == "duplicate":
            self._queue_out(msg, now)
            if self._hit():
                self._queue_out(msg, now)
                hit = True
        elif kind == "freeze":
            if self._frozen is None:
                self._frozen = msg
            else:
                hit = True
            self._queue_out(self._frozen, now)
        else:  # value and stamp faults
            if self.corrupt is None:
                raise SpecError(f"fault {kind!r} needs a message with positions or a stamp to change")
            hit = self._hit()
            self._queue_out(self.corrupt(msg, kind, self.rng) if hit else msg, now)
        self.counts["injected"] += int(hit)
        return hit

    def next_due(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def due(self, now: float) -> list[Any]:
        out = []
        while self._queue and self._queue[0][0] <= now:
            out.append(heapq.heappop(self._queue)[2])
        self.counts["sent"] += len(out)
        return out

"""Per-message timing across processes, joined afterwards by message stamp.

Nodes on one machine share ``time.monotonic()`` (CLOCK_MONOTONIC is system-wide on Linux), so
a frame published by robot_node at monotonic ``a`` and received by policy_node at ``b`` took
``b - a`` in DDS, whatever the two processes. Each node keeps a bounded ``Timeline`` of rows
``(event, topic, stamp_ns, mono_s, value_s)`` and writes it as JSON at exit (a node parameter
names the file); ``join`` pairs two events by topic and stamp.

    tl = Timeline()
    tl.mark("publish", "camera/scene/image_raw", stamp_ns, value_s=render_s)
    tl.write("robot_timeline.json")
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from pathlib import Path


class Timeline:
    def __init__(self, maxlen: int = 50000):
        self.rows: deque[tuple[str, str, int, float, float]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def mark(self, event: str, topic: str, stamp_ns: int, mono_s: float | None = None, value_s: float = 0.0) -> None:
        with self._lock:
            self.rows.append((event, topic, int(stamp_ns), time.monotonic() if mono_s is None else float(mono_s),
                              float(value_s)))

    def to_dict(self) -> dict:
        with self._lock:
            rows = list(self.rows)
        return {"columns": ["event", "topic", "stamp_ns", "mono_s", "value_s"], "rows": rows}

    def write(self, path: str | Path) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict()) + "\n")
        tmp.replace(p)


def load_rows(path: str | Path) -> list[tuple[str, str, int, float, float]]:
    data = json.loads(Path(path).read_text())
    return [tuple(r) for r in data["rows"]]


def index(rows, event: str) -> dict[tuple[str, int], tuple[float, float]]:
    """``{(topic, stamp_ns): (mono_s, value_s)}`` of one event (the first row of each pair)."""
    out: dict[tuple[str, int], tuple[float, float]] = {}
    for ev, topic, stamp, mono, value in rows:
        if ev == event:
            out.setdefault((topic, stamp), (mono, value))
    return out


def join(a: dict, b: dict) -> list[float]:
    """``b.mono - a.mono`` for every (topic, stamp) both have, in seconds."""
    return [b[k][0] - a[k][0] for k in a.keys() & b.keys()]

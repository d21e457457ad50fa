"""Recorded episodes (rosbag2 MCAP, ``rosmind.recording``) -> a zarr replay buffer that
``rosmind train`` reads exactly like the output of ``rosmind collect``.

Time. Every message gets one time on the robot's clock: its ``header.stamp`` when its topic
is stamped (some message has a nonzero stamp), else its receive time mapped through the
clock topic's (receive time, stamp) pairs: a command received between the ``joint_states``
of ticks k and k+1 lands between their stamps (piecewise linear; outside the recording, the
nearest pair's offset). Both went through the same transport to the recorder, so its latency
cancels out. The control clock is the stamps of the clock topic (``joint_states``), or, with
``rate_hz``, a uniform grid from its first to its last stamp.

Sync (per observation key, ``sync``): ``previous`` takes the newest message at or before the
tick (the first message for ticks before it), ``nearest`` the closest in time. Per topic the
report counts ``messages``, ``used``, ``dropped`` (never used: a skipped frame),
``duplicated`` (ticks that reuse the previous tick's message), ``max_skew_ms`` and
``over_skew`` (ticks farther than ``max_skew_ms`` from their message). Nothing is dropped
without being counted.

Action. ``action[k]`` is the joint command in force for the step after tick k (as in
``rosmind collect``: the command answering observation k), from what the robot received
(safety's outputs): a ``joint_trajectory`` chunk stamped s holds point i from
``s + time_from_start[i]`` and its last point after that; a
``forward_position_controller/commands`` holds from its arrival; the newest command that
started before tick k+1 wins (so a command answering tick k a few ms late still counts for
tick k). Before the first command the action is the measured ``joint_pos``.

Spec (``--spec conv.yaml``, every field optional)::

    clock: joint_states
    rate_hz: null              # a number: resample the clock
    sync: nearest              # or previous
    max_skew_ms: null
    robot: panda               # joint order (default: the episode's robot)
    keys:                      # output key -> topic and field
      joint_pos: {topic: joint_states, field: position}
      camera/wrist/rgb: {topic: camera/wrist/image_raw, field: rgb}
    action: [joint_trajectory, forward_position_controller/commands]

Memory: image topics are read stamps-only and the frames a key uses are fetched in one more
pass over the episode, so memory follows the output, not the recording.

Fields: ``position``/``velocity``/``effort`` (JointState, spec joint order), ``pose``
(PoseStamped, [7]), ``poses`` (PoseArray, [N, 7]), ``wrench`` ([6]), ``rgb`` (Image -> uint8
[H, W, 3]), ``data`` (Float64MultiArray). Topic names are relative (matched against the
recorded names in any namespace) or absolute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from rosmind.episodes import (
    EpisodeData,
    TopicData,
    decoder,
    fetch_messages,
    find_episodes,
    match_topic,
    read_episode,
)
from rosmind.errors import DatasetError, SpecError, UserError

_FIELDS = ("position", "velocity", "effort", "pose", "poses", "wrench", "rgb", "data")
DEFAULT_KEYS = {"joint_pos": ("joint_states", "position"), "joint_vel": ("joint_states", "velocity"),
                "ee_pose": ("ee_pose", "pose"), "wrench": ("wrench", "wrench"),
                "object_poses": ("object_poses", "poses"), "goal_pose": ("goal_pose", "pose")}
DEFAULT_ACTION = ("joint_trajectory", "forward_position_controller/commands")
_EPS_NS = 1000


@dataclass
class ConversionSpec:
    clock: str = "joint_states"
    rate_hz: float | None = None
    sync: Literal["nearest", "previous"] = "nearest"
    max_skew_ms: float | None = None
    robot: str | None = None
    keys: dict[str, dict[str, str]] | None = None  # None: DEFAULT_KEYS + every camera recorded
    action: tuple[str, ...] = DEFAULT_ACTION

    def __post_init__(self):
        if self.sync not in ("nearest", "previous"):
            raise SpecError(f"conversion spec: sync must be nearest or previous, got {self.sync!r}")
        if self.rate_hz is not None and not self.rate_hz > 0:
            raise SpecError(f"conversion spec: rate_hz must be > 0, got {self.rate_hz}")
        if self.max_skew_ms is not None and not self.max_skew_ms >= 0:
            raise SpecError(f"conversion spec: max_skew_ms must be >= 0, got {self.max_skew_ms}")
        for key, b in (self.keys or {}).items():
            if not isinstance(b, dict) or set(b) != {"topic", "field"}:
                raise SpecError(f"conversion spec: keys.{key} must be {{topic: ..., field: ...}}, got {b!r}")
            if b["field"] not in _FIELDS:
                raise SpecError(f"conversion spec: keys.{key}.field {b['field']!r} is not one of {_FIELDS}")
        self.action = tuple(self.action)

    @classmethod
    def load(cls, path: str | Path) -> ConversionSpec:
        try:
            d = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise SpecError(f"{path}: cannot read the conversion spec: {e}") from None
        if not isinstance(d, dict):
            raise SpecError(f"{path}: the conversion spec must be a mapping")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise SpecError(f"{path}: unknown fields {sorted(unknown)}; known: {list(cls.__dataclass_fields__)}")
        try:
            return cls(**d)
        except SpecError as e:
            raise SpecError(f"{path}: {e}") from None


@dataclass
class _Topic:
    td: TopicData
    t_ns: np.ndarray  # sync time of each message, sorted
    msgs: list[Any] = field(default_factory=list)  # decoded, same order
    stamp_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # 0: unstamped
    log_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def _stamp_ns(msg) -> int:
    h = getattr(msg, "header", None)
    return 0 if h is None else int(h.stamp.sec) * 1_000_000_000 + int(h.stamp.nanosec)


class _RecvClock:
    """Receive time -> the clock topic's stamp clock (see the module docstring)."""

    def __init__(self, recv: np.ndarray, stamp: np.ndarray):
        ok = np.full(len(stamp), bool(np.any(stamp > 0)))
        order = np.argsort(recv[ok], kind="stable")
        self.recv = recv[ok][order].astype(np.float64)
        self.stamp = np.maximum.accumulate(stamp[ok][order]).astype(np.float64)

    def __call__(self, recv: np.ndarray) -> np.ndarray:
        if len(self.recv) == 0:
            return recv
        r = recv.astype(np.float64)
        out = np.interp(r, self.recv, self.stamp)
        lo, hi = r < self.recv[0], r > self.recv[-1]
        out[lo] = r[lo] + (self.stamp[0] - self.recv[0])
        out[hi] = r[hi] + (self.stamp[-1] - self.recv[-1])
        return np.round(out).astype(np.int64)


class _LazyMessages:
    """A stamps-only topic's messages: ``prefetch(indices)`` reads the CDR of those (one pass
    over the episode), ``[i]`` decodes one."""

    def __init__(self, td: TopicData, dec: Callable[[bytes], Any], episode_dir: Path,
                 order: np.ndarray | None = None):
        self.td, self.dec, self.dir = td, dec, episode_dir
        self.order = np.arange(len(td.data)) if order is None else order
        self.cache: dict[int, bytes] = {}

    def reordered(self, order: np.ndarray) -> _LazyMessages:
        return _LazyMessages(self.td, self.dec, self.dir, self.order[order])

    def __len__(self) -> int:
        return len(self.order)

    def prefetch(self, indices) -> None:
        seqs = {self.td.seq[int(self.order[i])] for i in indices}
        self.cache = fetch_messages(self.dir, {self.td.name: seqs})[self.td.name]

    def __getitem__(self, i: int) -> Any:
        seq = self.td.seq[int(self.order[i])]
        if seq not in self.cache:
            self.prefetch([i])
        try:
            return self.dec(self.cache[seq])
        except Exception as e:  # noqa: BLE001 - named; the episode is skipped with the reason
            raise DatasetError(f"{self.td.name}: message {seq} does not decode ({type(e).__name__})") from None


def _decode_topic(td: TopicData, to_clock: Callable[[np.ndarray], np.ndarray] | None,
                  problems: list[str], episode_dir: Path) -> _Topic:
    dec = decoder(td.msg_type, td.schema)
    msgs: list[Any] | _LazyMessages
    if td.stamp_ns is not None:  # images: read stamps-only, fetched and decoded when used
        stamps, logs = list(td.stamp_ns), list(td.log_ns)
        msgs = _LazyMessages(td, dec, episode_dir)
    else:
        msgs, stamps, logs = [], [], []
        for i, (raw, log) in enumerate(zip(td.data, td.log_ns, strict=True)):
            try:
                m = dec(raw)
            except Exception as e:  # noqa: BLE001 - a corrupt message is reported, not fatal
                problems.append(f"{td.name}: message {i} does not decode ({type(e).__name__}); skipped")
                continue
            msgs.append(m)
            stamps.append(_stamp_ns(m))
            logs.append(log)
    st, lg = np.asarray(stamps, dtype=np.int64), np.asarray(logs, dtype=np.int64)
    # A topic is stamped when any message has a nonzero stamp (sim time starts at 0, so one
    # zero stamp is a real stamp); an all-zero topic is unstamped and uses receive times.
    stamped = bool(np.any(st > 0))
    t = st if stamped else (to_clock(lg) if to_clock is not None else lg)
    order = np.argsort(t, kind="stable")
    ordered = msgs.reordered(order) if isinstance(msgs, _LazyMessages) else [msgs[i] for i in order]
    return _Topic(td, t[order], ordered, st[order], lg[order])


def _reorder(msg_names, values, names: list[str]) -> np.ndarray:
    idx = {n: i for i, n in enumerate(msg_names)}
    missing = [n for n in names if n not in idx]
    if missing:
        raise DatasetError(f"joints {missing} missing from a message with {list(msg_names)}")
    v = np.asarray(values, dtype=np.float64)
    return v[[idx[n] for n in names]] if len(v) else np.zeros(len(names))


def _extract(f: str, names: list[str]) -> Callable[[Any], np.ndarray]:
    def reorder(msg_names, values):
        return _reorder(msg_names, values, names)

    def pose(p):
        return np.array([p.position.x, p.position.y, p.position.z, p.orientation.x,
                         p.orientation.y, p.orientation.z, p.orientation.w])

    def rgb(m):
        ch = {"rgb8": 3, "bgr8": 3}.get(m.encoding)
        if ch is None:
            raise DatasetError(f"image encoding {m.encoding!r} is not rgb8/bgr8")
        a = np.asarray(m.data, dtype=np.uint8).reshape(m.height, m.step)[:, : m.width * 3]
        a = a.reshape(m.height, m.width, 3)
        return np.ascontiguousarray(a[..., ::-1] if m.encoding == "bgr8" else a)

    table = {
        "position": lambda m: reorder(m.name, m.position),
        "velocity": lambda m: reorder(m.name, m.velocity),
        "effort": lambda m: reorder(m.name, m.effort),
        "pose": lambda m: pose(m.pose),
        "poses": lambda m: np.array([pose(p) for p in m.poses]).reshape(-1, 7),
        "wrench": lambda m: np.array([m.wrench.force.x, m.wrench.force.y, m.wrench.force.z,
                                      m.wrench.torque.x, m.wrench.torque.y, m.wrench.torque.z]),
        "rgb": rgb,
        "data": lambda m: np.asarray(m.data, dtype=np.float64),
    }
    return table[f]


def sync_indices(msg_t: np.ndarray, ticks: np.ndarray, policy: str) -> np.ndarray:
    """Index of the message used at each tick (``msg_t`` sorted, non-empty)."""
    prev = np.searchsorted(msg_t, ticks + _EPS_NS, side="right") - 1
    if policy == "previous":
        return np.clip(prev, 0, len(msg_t) - 1)
    nxt = np.clip(prev + 1, 0, len(msg_t) - 1)
    prev = np.clip(prev, 0, len(msg_t) - 1)
    return np.where(np.abs(msg_t[nxt] - ticks) < np.abs(msg_t[prev] - ticks), nxt, prev)


def frame_report(idx: np.ndarray, msg_t: np.ndarray, ticks: np.ndarray,
                 max_skew_ms: float | None) -> dict[str, Any]:
    used = np.unique(idx)
    skew = np.abs(msg_t[idx] - ticks) / 1e6
    rep = {"messages": int(len(msg_t)), "used": int(len(used)),
           "dropped": int(len(msg_t) - len(used)),
           "duplicated": int(np.sum(idx[1:] == idx[:-1])),
           "max_skew_ms": round(float(skew.max()), 3) if len(skew) else 0.0}
    if max_skew_ms is not None:
        rep["over_skew"] = int(np.sum(skew > max_skew_ms))
    return rep


def _actions(cmds: list[_Topic], names: list[str], ticks: np.ndarray, fallback: np.ndarray,
             report: dict[str, Any]) -> np.ndarray:
    """[T, D] command in force at each tick (see the module docstring)."""
    events: list[tuple[int, np.ndarray, np.ndarray]] = []  # (start ns, point times ns, [P, D])
    for c in cmds:
        is_traj = hasattr(c.msgs[0], "points") if c.msgs else False
        for t, m in zip(c.t_ns, c.msgs, strict=True):
            if is_traj:
                if not m.points:
                    continue
                q = np.stack([_reorder(m.joint_names, p.positions, names) for p in m.points])
                tfs = np.array([int(p.time_from_start.sec) * 1_000_000_000 + int(p.time_from_start.nanosec)
                                for p in m.points], dtype=np.int64)
                events.append((int(t), int(t) + tfs, q))
            else:
                q = np.asarray(m.data, dtype=np.float64)
                if q.shape != (len(names),):
                    report.setdefault("malformed_commands", 0)
                    report["malformed_commands"] += 1
                    continue
                events.append((int(t), np.array([int(t)]), q[None]))
    events.sort(key=lambda e: e[0])
    starts = np.array([e[0] for e in events], dtype=np.int64)
    # The step after tick k lasts until tick k+1: the command for it is the newest one that
    # started before tick k+1 (the last tick's step lasts one median period).
    period = int(np.median(np.diff(ticks))) if len(ticks) > 1 else 0
    bound = np.append(ticks[1:], ticks[-1] + period) - _EPS_NS
    out = fallback.copy()
    which = np.searchsorted(starts, bound, side="right") - 1 if events else np.full(len(ticks), -1)
    for k, e in enumerate(which):
        if e < 0:
            continue
        _, pt, q = events[e]
        i = max(0, int(np.searchsorted(pt, bound[k], side="right")) - 1)
        out[k] = q[i]
    used = np.unique(which[which >= 0])
    report.update(commands=len(events), used=int(len(used)), dropped=int(len(events) - len(used)),
                  ticks_before_first_command=int(np.sum(which < 0)))
    return out


def convert_episode(ep: EpisodeData, spec: ConversionSpec, names: list[str],
                    keys: dict[str, tuple[str, str]], action_topics: list[str]) -> tuple[dict[str, np.ndarray], dict]:
    """One episode -> ``{key: [T, ...]}`` plus its report; ``keys`` maps output keys to
    (recorded topic, field)."""
    problems = list(ep.problems)
    clock_topic = keys["joint_pos"][0] if spec.clock == "joint_states" else match_topic(spec.clock, list(ep.topics))
    if clock_topic is None or clock_topic not in ep.topics or not ep.topics[clock_topic].data:
        raise DatasetError(f"{ep.dir}: clock topic {spec.clock!r} has no messages")
    clock = _decode_topic(ep.topics[clock_topic], None, problems, ep.dir)
    offset = int(np.median(clock.stamp_ns - clock.log_ns)) if np.any(clock.stamp_ns > 0) else 0
    to_clock = _RecvClock(clock.log_ns, clock.stamp_ns)
    if spec.rate_hz:
        step = int(round(1e9 / spec.rate_hz))
        ticks = np.arange(clock.t_ns[0], clock.t_ns[-1] + 1, step, dtype=np.int64)
    else:
        ticks = np.unique(clock.t_ns)
    decoded = {clock_topic: clock}
    for topic in {t for t, _ in keys.values()} | set(action_topics):
        if topic not in decoded and topic in ep.topics:
            decoded[topic] = _decode_topic(ep.topics[topic], to_clock, problems, ep.dir)
    data: dict[str, np.ndarray] = {}
    report: dict[str, Any] = {"episode": ep.dir.name, "complete": ep.complete, "ticks": int(len(ticks)),
                              "clock_offset_ms": round(offset / 1e6, 3), "topics": {}}
    for key, (topic, f) in keys.items():
        tp = decoded.get(topic)
        if tp is None or not tp.msgs:
            raise DatasetError(f"{ep.dir}: topic {topic} (key {key!r}) has no messages in this episode")
        idx = sync_indices(tp.t_ns, ticks, spec.sync)
        report["topics"].setdefault(topic, frame_report(idx, tp.t_ns, ticks, spec.max_skew_ms))
        ex = _extract(f, names)
        if isinstance(tp.msgs, _LazyMessages):
            tp.msgs.prefetch(np.unique(idx))
        cache: dict[int, np.ndarray] = {}
        rows = []
        for i in idx:
            if i not in cache:
                cache[i] = ex(tp.msgs[i])
            rows.append(cache[i])
        data[key] = np.stack(rows) if f == "rgb" else np.stack(rows).astype(np.float64)
        if isinstance(tp.msgs, _LazyMessages):
            tp.msgs.cache = {}
    cmds = [decoded[t] for t in action_topics if t in decoded]
    report["action"] = {"topics": [c.td.name for c in cmds]}
    data["action"] = _actions(cmds, names, ticks, data["joint_pos"], report["action"])
    report["problems"] = problems
    return data, report


def _resolve_keys(spec: ConversionSpec, recorded: list[str]) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """Output keys -> (recorded topic, field) and the recorded action topics. Unknown topics in
    an explicit spec raise a UserError naming them; default keys whose topic was not recorded
    are left out."""
    if spec.keys is None:
        wanted = dict(DEFAULT_KEYS)
        for t in sorted(recorded):
            parts = t.strip("/").split("/")
            if len(parts) >= 3 and parts[-3] == "camera" and parts[-1] == "image_raw":
                wanted[f"camera/{parts[-2]}/rgb"] = ("camera/" + parts[-2] + "/image_raw", "rgb")
        explicit = False
    else:
        wanted = {k: (b["topic"], b["field"]) for k, b in spec.keys.items()}
        explicit = True
    keys, unknown = {}, []
    for key, (topic, f) in wanted.items():
        hit = match_topic(topic, recorded)
        if hit is None:
            if explicit or key == "joint_pos":
                unknown.append(f"{topic} (key {key})")
            continue
        keys[key] = (hit, f)
    actions = [match_topic(t, recorded) for t in spec.action]
    missing_actions = [t for t, h in zip(spec.action, actions, strict=True) if h is None]
    if spec.action != DEFAULT_ACTION:
        unknown += [f"{t} (action)" for t in missing_actions]
    if "joint_pos" not in keys and not unknown:
        unknown.append("joint_states (key joint_pos)")
    if unknown:
        raise UserError(f"conversion spec names topics that no episode recorded: {', '.join(unknown)}; "
                        f"recorded topics: {sorted(recorded)}")
    return keys, [a for a in actions if a is not None]


def _check_fits(buf, data: dict[str, np.ndarray]) -> None:
    """Refuse an episode whose keys or per-step shapes differ from the buffer's before anything
    is appended (an episode is added whole or not at all)."""
    existing = buf.keys()
    if not existing:
        return
    if set(existing) != set(data):
        raise DatasetError(f"keys {sorted(data)} differ from the buffer's {sorted(existing)}")
    for k, v in data.items():
        arr = buf.array(k)
        if arr.shape[1:] != v.shape[1:] or arr.dtype != v.dtype:
            raise DatasetError(f"key {k!r}: per-step shape {v.shape[1:]} {v.dtype} differs from the "
                               f"buffer's {arr.shape[1:]} {arr.dtype}")


def convert(episodes_dir: str | Path, out: str | Path, spec: ConversionSpec | None = None,
            append: bool = False, success_only: bool = False) -> dict[str, Any]:
    """Convert every episode under ``episodes_dir`` into the zarr buffer ``out``; returns the
    report (also stored in the buffer's attrs under ``conversion``)."""
    from rosmind.dataset import ReplayBuffer
    from rosmind.spec import load_spec

    spec = spec or ConversionSpec()
    dirs = find_episodes(episodes_dir)
    episodes = [read_episode(d, stamps_only=True) for d in dirs]
    recorded = sorted({t for e in episodes for t, td in e.topics.items() if td.data})  # with messages
    keys, action_topics = _resolve_keys(spec, recorded)
    robot = spec.robot or next((e.info.robot for e in episodes if e.info.robot), "panda")
    names = list(load_spec(robot).joint_names)
    buf = ReplayBuffer.open(out, "a" if append else "w")
    report: dict[str, Any] = {"episodes": [], "skipped": [], "keys": {k: list(v) for k, v in keys.items()},
                              "sync": spec.sync, "rate_hz": spec.rate_hz, "robot": robot}
    for ep in episodes:
        if success_only and ep.info.success is not True:
            report["skipped"].append({"episode": ep.dir.name, "why": f"success={ep.info.success}"})
            continue
        try:
            data, rep = convert_episode(ep, spec, names, keys, action_topics)
            _check_fits(buf, data)
            buf.add_episode(data, {"success": np.uint8(bool(ep.info.success)),
                                   "interventions": np.int64(ep.info.interventions)})
        except DatasetError as e:
            report["skipped"].append({"episode": ep.dir.name, "why": str(e)})
            continue
        report["episodes"].append(rep)
    report["episodes_in_buffer"] = buf.n_episodes
    report["steps_in_buffer"] = buf.n_steps
    buf.root.attrs["conversion"] = report
    if not report["episodes"]:
        raise DatasetError(f"{episodes_dir}: no episode could be converted: "
                           + "; ".join(f"{s['episode']}: {s['why']}" for s in report["skipped"]))
    return report

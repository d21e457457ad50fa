"""Reading recorded episodes back (no rclpy): the rosbag2 MCAP directories that
``rosmind.recording`` writes, complete or cut short by a crash, and decoding their CDR.

``read_episode(dir)`` returns every message as raw CDR with its receive time, per topic;
``decoder(type, schema)`` turns CDR into a message object (rosbags' Jazzy type store, or the
schema text stored in the episode for other types); ``replay_commands(episode)`` lists the
commands the robot received, for ``rosmind replay``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rosmind.errors import DatasetError, SpecError
from rosmind.recording import METADATA_YAML, EpisodeInfo, typestore

# Read stamps-only by ``read_episode(..., stamps_only=True)``: large, and a converter needs only
# the frames it uses (``fetch_messages``). Each has a std_msgs/Header first.
STAMPS_ONLY_TYPES = frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage",
                               "sensor_msgs/msg/PointCloud2"})


@dataclass
class TopicData:
    """One topic of a read episode: receive times (ns) and the raw CDR of every message, or,
    for a stamps-only topic, ``data[i] = None`` and its header stamp in ``stamp_ns[i]``.
    ``seq[i]``: the message's position among the topic's messages in the stream (what
    ``fetch_messages`` takes)."""

    name: str
    msg_type: str
    schema: str
    log_ns: list[int] = field(default_factory=list)
    data: list[bytes | None] = field(default_factory=list)
    seq: list[int] = field(default_factory=list)
    stamp_ns: list[int] | None = None


def cdr_stamp_ns(raw: bytes) -> int:
    """header.stamp of a CDR message whose first field is a std_msgs/Header: after the 4-byte
    encapsulation header (byte 1: 1 = little endian), int32 sec and uint32 nanosec."""
    sec, nsec = struct.unpack("<iI" if raw[1] == 1 else ">iI", raw[4:12])
    return sec * 1_000_000_000 + nsec


@dataclass
class EpisodeData:
    """An episode as read back. ``complete``: the MCAP ended with its footer (closed cleanly);
    ``problems``: where reading stopped and why (truncation, corruption)."""

    dir: Path
    info: EpisodeInfo
    topics: dict[str, TopicData]
    complete: bool
    problems: list[str]


def find_episodes(root: str | Path) -> list[Path]:
    """Episode directories under ``root`` (``root`` itself when it holds an MCAP), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such episode directory")
    if any(root.glob("*.mcap")):
        return [root]
    found = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*.mcap")))
    if not found:
        raise DatasetError(f"{root}: no episodes (directories with an .mcap file) found")
    return found


def _mcap_files(episode_dir: Path) -> list[Path]:
    meta = episode_dir / METADATA_YAML
    if meta.exists():
        try:
            info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
            files = [episode_dir / f for f in info.get("relative_file_paths") or []]
            if files and all(f.exists() for f in files):
                return files
        except (yaml.YAMLError, KeyError, TypeError, OSError):
            pass
    return sorted(episode_dir.glob("*.mcap"))


def _scan(d: Path, on_channel: Callable[[Any, Any], Any], on_message: Callable[[Any, Any], None],
          problems: list[str]) -> bool:
    """Stream every MCAP file of episode ``d``: ``on_channel(channel, schema)`` returns a
    handle (None: skip the channel's messages), ``on_message(handle, message)``. Returns
    whether every file ended with its footer; appends where reading stopped to ``problems``."""
    from mcap.records import Channel, Footer, Message, Schema
    from mcap.stream_reader import StreamReader

    files = _mcap_files(d)
    if not files:
        raise DatasetError(f"{d}: no .mcap file in the episode directory")
    complete = True
    for path in files:
        schemas: dict[int, Any] = {}
        handles: dict[int, Any] = {}
        n = 0
        footer = False
        with open(path, "rb") as fh:
            try:
                for rec in StreamReader(fh, skip_magic=False).records:
                    if isinstance(rec, Message):
                        h = handles.get(rec.channel_id)
                        if h is not None:
                            on_message(h, rec)
                        n += 1
                    elif isinstance(rec, Schema):
                        schemas[rec.id] = rec
                    elif isinstance(rec, Channel):
                        handles[rec.id] = on_channel(rec, schemas.get(rec.schema_id))
                    elif isinstance(rec, Footer):
                        footer = True
            except Exception as e:  # noqa: BLE001 - truncated/corrupt data: keep what was read
                problems.append(f"{path.name}: unreadable after {n} messages "
                                f"({type(e).__name__}: {e or 'end of file'})")
        if not footer:
            complete = False
            if not problems or not problems[-1].startswith(path.name):
                problems.append(f"{path.name}: no footer (recorder did not close it); "
                                f"read {n} messages")
    return complete


def read_episode(episode_dir: str | Path, topics: set[str] | Callable[[str], bool] | None = None,
                 stamps_only: bool = False) -> EpisodeData:
    """Read every message (of ``topics``: a set of absolute names or a predicate) of one episode;
    with ``stamps_only``, topics of ``STAMPS_ONLY_TYPES`` keep header stamps, not CDR.

    Stream reading: a file without summary or footer (a killed recorder) is read up to its
    last complete record; the rest is named in ``problems``, never skipped silently.
    """
    d = Path(episode_dir)
    keep = topics if callable(topics) or topics is None else topics.__contains__
    out: dict[str, TopicData] = {}
    problems: list[str] = []

    def on_channel(ch, sc):
        if keep is not None and not keep(ch.topic):
            return None
        td = out.get(ch.topic)
        if td is None:
            name = sc.name if sc else ""
            td = out[ch.topic] = TopicData(ch.topic, name, sc.data.decode(errors="replace") if sc else "")
            if stamps_only and name in STAMPS_ONLY_TYPES:
                td.stamp_ns = []
        return td

    def on_message(td: TopicData, rec) -> None:
        td.log_ns.append(rec.log_time)
        td.seq.append(len(td.seq))
        if td.stamp_ns is None:
            td.data.append(rec.data)
        else:
            td.data.append(None)
            td.stamp_ns.append(cdr_stamp_ns(rec.data))

    complete = _scan(d, on_channel, on_message, problems)
    for td in out.values():  # multiple files or out-of-order writes: order by receive time
        if any(b < a for a, b in zip(td.log_ns, td.log_ns[1:], strict=False)):
            order = sorted(range(len(td.log_ns)), key=td.log_ns.__getitem__)
            td.log_ns = [td.log_ns[i] for i in order]
            td.data = [td.data[i] for i in order]
            td.seq = [td.seq[i] for i in order]
            if td.stamp_ns is not None:
                td.stamp_ns = [td.stamp_ns[i] for i in order]
    return EpisodeData(d, EpisodeInfo.load(d), out, complete, problems)


def fetch_messages(episode_dir: str | Path, wanted: dict[str, set[int]]) -> dict[str, dict[int, bytes]]:
    """The CDR of the messages ``wanted[topic]`` (``TopicData.seq`` numbers), in one pass."""
    out: dict[str, dict[int, bytes]] = {t: {} for t in wanted}
    counts: dict[str, int] = dict.fromkeys(wanted, 0)

    def on_message(topic: str, rec) -> None:
        i = counts[topic]
        counts[topic] = i + 1
        if i in wanted[topic]:
            out[topic][i] = rec.data

    _scan(Path(episode_dir), lambda ch, _sc: ch.topic if ch.topic in wanted else None, on_message, [])
    return out


def decoder(msg_type: str, schema: str = "") -> Callable[[bytes], Any]:
    """CDR bytes -> a rosbags message object of ``msg_type`` (registered from the episode's
    schema text when the Jazzy store lacks it). Raises DatasetError for an unknown type."""
    ts = typestore()
    if msg_type not in ts.fielddefs:
        if not schema:
            raise DatasetError(f"message type {msg_type} is unknown and the episode has no schema for it")
        from rosbags.typesys import get_types_from_msg

        ts.register(get_types_from_msg(schema, msg_type))
    return lambda data: ts.deserialize_cdr(data, msg_type)


def match_topic(name: str, recorded: list[str]) -> str | None:
    """The recorded (absolute) topic for ``name``: itself if absolute, ``/name`` if recorded,
    else the one recorded name ending in ``/name``; SpecError when several namespaces have it."""
    if name.startswith("/"):
        return name if name in recorded else None
    if "/" + name in recorded:
        return "/" + name
    hits = [t for t in recorded if t == "/" + name or t.endswith("/" + name)]
    if len(hits) > 1:
        raise SpecError(f"topic {name!r} is ambiguous in the recording: {hits}; give an absolute name")
    return hits[0] if hits else None


REPLAY_SOURCES = {
    # what the robot received (safety's outputs), sent through safety again
    "outputs": ("joint_trajectory", "forward_position_controller/commands"),
    # what the policy or teleop asked safety for
    "inputs": ("safety/joint_trajectory", "safety/commands"),
}


@dataclass
class RecordedCommand:
    """One command to re-send: ``t_s`` seconds after the first; ``kind`` ``trajectory``
    (trajectory_msgs/JointTrajectory CDR) or ``commands`` (std_msgs/Float64MultiArray CDR)."""

    t_s: float
    kind: str
    data: bytes


def replay_commands(episode_dir: str | Path, source: str = "outputs") -> list[RecordedCommand]:
    """The episode's commands of ``source`` (``REPLAY_SOURCES``) in receive order, timed by
    their receive times. Raises DatasetError when the episode recorded none."""
    if source not in REPLAY_SOURCES:
        raise SpecError(f"replay source must be one of {sorted(REPLAY_SOURCES)}, got {source!r}")
    rels = REPLAY_SOURCES[source]
    names = read_episode(episode_dir, lambda t: any(t == "/" + r or t.endswith("/" + r) for r in rels))
    recorded = list(names.topics)
    out: list[tuple[int, str, bytes]] = []
    for rel, kind in zip(REPLAY_SOURCES[source], ("trajectory", "commands"), strict=True):
        topic = match_topic(rel, recorded)
        if topic is not None:
            td = names.topics[topic]
            out += [(t, kind, d) for t, d in zip(td.log_ns, td.data, strict=True)]
    if not out:
        raise DatasetError(f"{episode_dir}: no recorded commands on {list(REPLAY_SOURCES[source])} "
                           f"(recorded topics: {recorded})")
    out.sort(key=lambda c: c[0])
    t0 = out[0][0]
    return [RecordedCommand((t - t0) * 1e-9, kind, data) for t, kind, data in out]

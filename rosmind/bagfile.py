"""The on-disk episode: one rosbag2 directory with one MCAP file, its metadata.yaml and the
``episode.json`` sidecar (layout in ``rosmind.recording``). No rclpy here; one thread writes."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from rosmind.errors import DatasetError

ROSBAG2_VERSION = 9  # Jazzy
EPISODE_JSON = "episode.json"
METADATA_YAML = "metadata.yaml"
LIBRARY = "rosmind recorder"


@dataclass
class EpisodeInfo:
    """The sidecar ``episode.json`` (also mirrored as strings in metadata.yaml custom_data)."""

    name: str
    robot: str = ""
    task: str = ""
    instruction: str = ""
    operator: str = ""
    success: bool | None = None
    interventions: int = 0
    start_ns: int = 0
    stop_ns: int = 0
    status: Literal["recording", "stopped", "storage_failed"] = "recording"
    message_counts: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, episode_dir: str | Path) -> EpisodeInfo:
        p = Path(episode_dir) / EPISODE_JSON
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError:
            return cls(name=Path(episode_dir).name)
        except (OSError, ValueError) as e:
            raise DatasetError(f"{p}: unreadable episode metadata: {e}") from None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


_TYPESTORE = None


def typestore():
    """The rosbags type store of ROS 2 Jazzy (message definitions, CDR (de)serializer)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        from rosbags.typesys import Stores, get_typestore

        _TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
    return _TYPESTORE


def msgdef(msg_type: str) -> str:
    """The ``ros2msg`` schema text of ``pkg/msg/Type`` with every nested type appended after
    ``===`` / ``MSG: pkg/Type`` separators (what rosbag2 and Foxglove put in MCAP schemas);
    ``""`` for a type the Jazzy store does not know (the CDR bytes are still recorded)."""
    ts = typestore()
    if msg_type not in ts.fielddefs:
        return ""
    return ts.generate_msgdef(msg_type, ros_version=2)[0]


def qos_dict(reliability: str = "reliable", durability: str = "volatile", depth: int = 0,
             history: str = "unknown") -> dict[str, Any]:
    """One offered QoS profile in rosbag2 version-9 metadata form."""
    zero = {"sec": 0, "nsec": 0}
    return {"history": history, "depth": depth, "reliability": reliability,
            "durability": durability, "deadline": dict(zero), "lifespan": dict(zero),
            "liveliness": "automatic", "liveliness_lease_duration": dict(zero),
            "avoid_ros_namespace_conventions": False}


@dataclass
class TopicInfo:
    name: str  # absolute, as on the graph
    msg_type: str  # pkg/msg/Type
    offered_qos: list[dict[str, Any]] = field(default_factory=list)
    type_hash: str = ""
    # False for a topic subscribed before its publishers were seen (offered QoS and type hash
    # not known yet): an episode holds its messages back until they are (see EpisodeWriter).
    confirmed: bool = True


# An unconfirmed topic's messages wait at most this long (their own receive times) for its
# publishers' QoS; then its channel is written with what is known.
CONFIRM_WAIT_NS = 3_000_000_000
# Each open episode keeps this much disk in a file of its own, given back when the episode
# ends: on a full disk, the last metadata (status "storage_failed", message counts) still fits.
RESERVE_FILE, RESERVE_BYTES = ".space_reserve", 64 << 10


class EpisodeWriter:
    """One rosbag2 directory with one MCAP file. Not thread safe: one thread writes."""

    def __init__(self, directory: Path, info: EpisodeInfo, compression: str = "none",
                 chunk_size: int = 4 << 20):
        from mcap.writer import CompressionType, Writer

        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=False)
        self.info = info
        self.file_name = f"{self.dir.name}_0.mcap"
        self._fh = open(self.dir / self.file_name, "wb")
        comp = {"none": CompressionType.NONE, "lz4": CompressionType.LZ4,
                "zstd": CompressionType.ZSTD}[compression]
        self.compression = "" if compression == "none" else compression
        self._mcap = Writer(self._fh, chunk_size=chunk_size, compression=comp)
        self._mcap.start(profile="ros2", library=LIBRARY)
        self._schemas: dict[str, int] = {}
        self._held: dict[str, tuple[TopicInfo, list[tuple[bytes, int]]]] = {}
        self.channels: dict[str, int] = {}
        self.topics: dict[str, TopicInfo] = {}
        self.counts: dict[str, int] = {}
        self.first_ns: int | None = None
        self.last_ns = 0
        self.bytes = 0
        self.write_metadata()
        with open(self.dir / RESERVE_FILE, "wb") as f:  # real blocks, not a sparse file
            f.write(b"\0" * RESERVE_BYTES)

    def add_topic(self, topic: TopicInfo) -> None:
        """Register ``topic``'s channel, or, while its publishers' QoS is unknown
        (``confirmed`` false), hold its messages back until a confirmed TopicInfo comes.

        Each channel's record and metadata.yaml's entry are the same snapshot, taken when the
        channel is written: readers that pair the two (rosbags' AnyReader) then find every
        message (a first episode recorded before discovery finished once lost most of them)."""
        if topic.name in self.channels:
            return
        snap = TopicInfo(topic.name, topic.msg_type, [dict(q) for q in topic.offered_qos], topic.type_hash,
                         topic.confirmed)
        held = self._held.pop(topic.name, None)
        if not snap.confirmed:
            self._held[topic.name] = (snap, held[1] if held else [])
            return
        self._register(snap)
        for data, t_ns in held[1] if held else ():
            self.write(topic.name, data, t_ns)

    def accepts(self, topic: str) -> bool:
        return topic in self.channels or topic in self._held

    def _register(self, topic: TopicInfo) -> None:
        sid = self._schemas.get(topic.msg_type)
        if sid is None:
            sid = self._mcap.register_schema(topic.msg_type, "ros2msg", msgdef(topic.msg_type).encode())
            self._schemas[topic.msg_type] = sid
        meta = {"offered_qos_profiles": yaml.safe_dump(topic.offered_qos, sort_keys=False),
                "topic_type_hash": topic.type_hash}
        self.channels[topic.name] = self._mcap.register_channel(topic.name, "cdr", sid, meta)
        self.topics[topic.name] = topic
        self.counts[topic.name] = 0

    def write(self, topic: str, data: bytes, t_ns: int) -> None:
        held = self._held.get(topic)
        if held is not None:
            held[1].append((data, t_ns))
            if t_ns - held[1][0][1] > CONFIRM_WAIT_NS:  # discovery never told: write as known
                self.add_topic(TopicInfo(held[0].name, held[0].msg_type, held[0].offered_qos,
                                         held[0].type_hash, True))
            return
        self._mcap.add_message(self.channels[topic], log_time=t_ns, data=data, publish_time=t_ns,
                               sequence=self.counts[topic])
        self.counts[topic] += 1
        self.bytes += len(data)
        if self.first_ns is None:
            self.first_ns = t_ns
        self.last_ns = max(self.last_ns, t_ns)

    def flush(self) -> None:
        """Finish the open chunk and push it to the OS (survives a SIGKILL of this process)."""
        self._mcap.flush()

    def metadata(self) -> dict[str, Any]:
        start = self.first_ns if self.first_ns is not None else self.info.start_ns
        duration = max(0, self.last_ns - start) if self.first_ns is not None else 0
        total = sum(self.counts.values())
        custom = {k: (json.dumps(v) if not isinstance(v, str) else v)
                  for k, v in asdict(self.info).items() if k not in ("message_counts", "dropped")}
        return {"rosbag2_bagfile_information": {
            "version": ROSBAG2_VERSION,
            "storage_identifier": "mcap",
            "duration": {"nanoseconds": duration},
            "starting_time": {"nanoseconds_since_epoch": start},
            "message_count": total,
            "topics_with_message_count": [
                {"topic_metadata": {"name": t.name, "type": t.msg_type, "serialization_format": "cdr",
                                    "offered_qos_profiles": t.offered_qos,
                                    "type_description_hash": t.type_hash},
                 "message_count": self.counts[t.name]}
                for t in self.topics.values()],
            "compression_format": self.compression,
            "compression_mode": "",
            "relative_file_paths": [self.file_name],
            "files": [{"path": self.file_name, "starting_time": {"nanoseconds_since_epoch": start},
                       "duration": {"nanoseconds": duration}, "message_count": total}],
            "custom_data": custom,
            "ros_distro": "jazzy",
        }}

    def write_metadata(self) -> None:
        """metadata.yaml and episode.json, each replaced atomically."""
        self.info.message_counts = dict(self.counts)
        _atomic_write(self.dir / METADATA_YAML, yaml.safe_dump(self.metadata(), sort_keys=False))
        _atomic_write(self.dir / EPISODE_JSON, json.dumps(asdict(self.info), indent=1))

    def abandon(self) -> None:
        """Close the file as it stands (storage failed: finishing it would fail too); readers
        read it up to its last complete chunk, like a file cut short by a crash."""
        try:
            self._fh.close()
        except OSError:
            pass
        self._release_reserve()

    def _release_reserve(self) -> None:
        (self.dir / RESERVE_FILE).unlink(missing_ok=True)

    def close(self) -> None:
        for name in list(self._held):
            t = self._held[name][0]
            self.add_topic(TopicInfo(t.name, t.msg_type, t.offered_qos, t.type_hash, True))
        self._mcap.finish()
        self._fh.close()
        self._release_reserve()
        self.write_metadata()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)

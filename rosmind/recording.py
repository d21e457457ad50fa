"""Demonstration episodes on disk: rosbag2 directories with MCAP storage (no rclpy here).

One episode is one rosbag2 directory (``ros2 bag info DIR`` and Foxglove open it)::

    <out_dir>/<name>/                 name = episode_<UTC yyyymmdd_HHMMSS>_<index>
      <name>_0.mcap                   profile "ros2"; one schema per message type
                                      (ros2msg text, so Foxglove decodes CDR), one channel
                                      per topic (metadata: offered_qos_profiles,
                                      topic_type_hash), raw CDR messages, log_time = receive
                                      time on the recorder's ROS clock
      metadata.yaml                   rosbag2 bagfile information, version 9 (Jazzy):
                                      topics_with_message_count, offered QoS, custom_data
                                      (the episode metadata as strings); written at start and
                                      rewritten every ``metadata_period_s``
      episode.json                    EpisodeInfo: task, instruction, operator, robot, success,
                                      interventions, start/stop times (ns), counts, status

Crash safety: the writer finishes an MCAP chunk and flushes the file every
``flush_period_s`` (chunked files are only readable up to the last complete chunk), so a
recorder killed with SIGKILL loses at most that long; ``rosmind.episodes.read_episode`` reads a file without
footer or summary (and a last chunk cut in half) and reports where it stopped.

``EpisodeRecorder`` is the episode lifecycle (start / stop / discard / mark_success) over a
writer thread that drains a queue of ``(topic, cdr_bytes, receive_ns)`` to disk;
``recorder_node`` only feeds it from raw subscriptions.
"""

from __future__ import annotations

import json
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from rosmind.bagfile import (  # noqa: F401 - re-exported: the episode format's names
    EPISODE_JSON,
    METADATA_YAML,
    EpisodeInfo,
    EpisodeWriter,
    TopicInfo,
    _atomic_write,
    msgdef,
    qos_dict,
    typestore,
)
from rosmind.errors import SpecError
from rosmind.schema import IMU, JOINT_STATE, ODOMETRY, POSE_ARRAY, POSE_STAMPED, WRENCH_STAMPED

DEFAULT_TOPICS = ("joint_states", "ee_pose", "wrench", "object_poses", "goal_pose",
                  "camera/*/image_raw", "joint_trajectory", "forward_position_controller/commands",
                  "safety/joint_trajectory", "safety/commands", "/diagnostics", "episode/outcome")
TRAJECTORY, FLOATS = "trajectory_msgs/msg/JointTrajectory", "std_msgs/msg/Float64MultiArray"
KNOWN_TYPES = {  # relative names of the rosmind graph and their types (DESIGN.md "Topics")
    "joint_states": JOINT_STATE, "ee_pose": POSE_STAMPED, "goal_pose": POSE_STAMPED,
    "wrench": WRENCH_STAMPED, "object_poses": POSE_ARRAY, "imu": IMU, "odom": ODOMETRY,
    "joint_trajectory": TRAJECTORY, "safety/joint_trajectory": TRAJECTORY,
    "forward_position_controller/commands": FLOATS, "safety/commands": FLOATS,
    "diagnostics": "diagnostic_msgs/msg/DiagnosticArray", "episode/outcome": "std_msgs/msg/String",
    "cmd_vel": "geometry_msgs/msg/Twist",
}


@dataclass
class RecorderConfig:
    """Parameters of ``recorder_node`` (one ROS parameter per field).

    ``topics``: names or ``fnmatch`` patterns (``camera/*/image_raw``), relative to the node's
    namespace; types are resolved from the graph, topics that appear later are added.
    ``qos_depth``: history depth of every (reliable, when the publishers are) subscription.
    ``max_pending_mb``: bytes queued for the writer before new messages are dropped (counted
    as ``dropped`` in episode.json, never silently).
    """

    out_dir: str = "data/episodes"
    topics: tuple[str, ...] = DEFAULT_TOPICS
    robot: str = "panda"
    task: str = ""
    instruction: str = ""
    operator: str = ""
    auto_start: bool = False  # start episode 0 as soon as the node is up
    stop_on_outcome: bool = False  # an episode/outcome message ends the episode (sim)
    flush_period_s: float = 0.5
    metadata_period_s: float = 1.0
    discovery_period_s: float = 0.5
    chunk_size_mb: float = 4.0
    compression: Literal["none", "lz4", "zstd"] = "none"
    qos_depth: int = 100
    max_pending_mb: float = 512.0
    executor: Literal["events", "single"] = "events"  # rclpy's C++ events executor, or Python's

    def __post_init__(self):
        for name in ("flush_period_s", "metadata_period_s", "discovery_period_s", "chunk_size_mb",
                     "max_pending_mb"):
            if not getattr(self, name) > 0:
                raise SpecError(f"RecorderConfig.{name}: must be > 0, got {getattr(self, name)}")
        if self.flush_period_s > 1.0:
            raise SpecError(f"RecorderConfig.flush_period_s: at most 1.0 s (crash safety), "
                            f"got {self.flush_period_s}")
        if self.qos_depth < 1:
            raise SpecError(f"RecorderConfig.qos_depth: must be >= 1, got {self.qos_depth}")
        if not self.topics:
            raise SpecError("RecorderConfig.topics: give at least one topic")






class EpisodeRecorder:
    """Episode lifecycle over a writer thread.

    ``submit(topic, cdr, t_ns)`` is the hot path (called from subscription callbacks): when an
    episode is open it enqueues the bytes, else it returns at once. ``clock()`` gives the
    nanoseconds stamped on metadata; ``log(str)`` reports writer failures.
    """

    def __init__(self, cfg: RecorderConfig, clock: Callable[[], int],
                 log: Callable[[str], None] = print):
        self.cfg = cfg
        self.clock = clock
        self.log = log
        self.out_dir = Path(cfg.out_dir)
        self.topics: dict[str, TopicInfo] = {}
        self.meta: dict[str, Any] = {"task": cfg.task, "instruction": cfg.instruction,
                                     "operator": cfg.operator}
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        # Queued bytes = submitted - written; each counter has one writing thread (the
        # subscription callbacks' and the writer's), so no update is lost between them.
        self._submitted = 0
        self._written = 0
        self._max_pending = int(cfg.max_pending_mb * (1 << 20))
        self._lock = threading.Lock()
        self._episode: EpisodeWriter | None = None
        self._recording = False
        self._dropped: dict[str, int] = {}
        self._index = 0
        self._interventions_base: int | None = None
        self._interventions_last = 0
        self.last_dir: Path | None = None
        self.error = ""  # the last storage failure, shown in status()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="episode_writer", daemon=True)
        self._thread.start()

    @property
    def recording(self) -> bool:
        return self._recording

    def add_topic(self, topic: TopicInfo) -> None:
        with self._lock:
            self.topics[topic.name] = topic
            if self._recording:
                self._queue.put(("topic", topic, 0))

    def submit(self, topic: str, data: bytes, t_ns: int) -> None:
        if not self._recording:
            return
        n = len(data)
        if self._submitted - self._written + n > self._max_pending:
            with self._lock:  # rare path; the writer copies this dict under the lock
                self._dropped[topic] = self._dropped.get(topic, 0) + 1
            return
        self._submitted += n
        self._queue.put((topic, data, t_ns))

    def update_metadata(self, values: dict[str, Any]) -> None:
        """Fields task/instruction/operator/success go to EpisodeInfo, others to ``extra``."""
        with self._lock:
            self.meta.update(values)
            if self._episode is not None:
                self._apply_meta(self._episode.info)

    def note_interventions(self, total: int) -> None:
        """Safety's cumulative ``interventions_total``; the episode counts the increase."""
        self._interventions_last = total
        if self._interventions_base is None:
            self._interventions_base = total

    def _apply_meta(self, info: EpisodeInfo) -> None:
        for k, v in self.meta.items():
            if k in ("task", "instruction", "operator"):
                setattr(info, k, str(v))
            elif k == "success":
                info.success = None if v is None else bool(v)
            else:
                info.extra[k] = v

    def start(self) -> tuple[bool, str]:
        with self._lock:
            if self._recording:
                return False, f"already recording {self._episode.dir if self._episode else ''}"
            stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime())
            while True:
                name = f"episode_{stamp}_{self._index:03d}"
                self._index += 1
                if not (self.out_dir / name).exists():
                    break
            info = EpisodeInfo(name=name, robot=self.cfg.robot, start_ns=self.clock())
            self.meta.pop("success", None)
            self._apply_meta(info)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            try:
                ep = EpisodeWriter(self.out_dir / name, info, self.cfg.compression,
                                   int(self.cfg.chunk_size_mb * (1 << 20)))
            except OSError as e:
                return False, f"cannot create {self.out_dir / name}: {e}"
            for t in self.topics.values():
                ep.add_topic(t)
            self._episode = ep  # complete before the writer thread can see it
            self._dropped = {}
            self._interventions_base = self._interventions_last if self._interventions_base is not None else None
            self._recording = True
            self.error = ""
            self.last_dir = self._episode.dir
            return True, str(self._episode.dir)

    def _end(self, keep: bool) -> tuple[bool, str]:
        with self._lock:
            if not self._recording or self._episode is None:
                return False, "not recording"
            self._recording = False
            ep = self._episode
        done = threading.Event()
        self._queue.put(("end", done, 0))  # the writer drains what came before, then closes
        if not done.wait(timeout=60.0):
            return False, f"{ep.dir}: the writer did not finish within 60 s"
        total = sum(ep.counts.values())
        if keep and total:
            return True, f"{ep.dir} ({total} messages, success={ep.info.success})"
        if keep:  # nothing was recorded (e.g. the graph went away): no empty episode on disk
            shutil.rmtree(ep.dir, ignore_errors=True)
            return True, f"{ep.dir}: no messages, discarded"
        shutil.rmtree(ep.dir, ignore_errors=True)
        return True, f"discarded {ep.dir}"

    def _close_episode(self, ep: EpisodeWriter) -> None:
        """Writer thread: final metadata, then close the file."""
        with self._lock:
            ep.info.stop_ns = self.clock()
            ep.info.status = "stopped"
            ep.info.dropped = dict(self._dropped)
            if self._interventions_base is not None:
                ep.info.interventions = self._interventions_last - self._interventions_base
            self._apply_meta(ep.info)
            self._episode = None
        ep.close()

    def stop(self) -> tuple[bool, str]:
        return self._end(keep=True)

    def discard(self) -> tuple[bool, str]:
        return self._end(keep=False)

    def mark_success(self, success: bool = True) -> tuple[bool, str]:
        with self._lock:
            self.meta["success"] = success
            if self._episode is not None:
                self._episode.info.success = success
                return True, f"{self._episode.dir.name}: success={success}"
            if self.last_dir is not None and (self.last_dir / EPISODE_JSON).exists():
                info = EpisodeInfo.load(self.last_dir)  # after stop: amend the last episode
                info.success = success
                _atomic_write(self.last_dir / EPISODE_JSON, json.dumps(asdict(info), indent=1))
                return True, f"{self.last_dir.name}: success={success}"
            return False, "no episode to mark"

    def status(self) -> dict[str, Any]:
        ep = self._episode
        return {"recording": self._recording, "episode": str(ep.dir) if ep else "",
                "messages": sum(ep.counts.values()) if ep else 0,
                "dropped": sum(self._dropped.values()), "topics": sorted(self.topics), "error": self.error}

    def _run(self) -> None:
        last_flush = last_meta = time.monotonic()
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=min(self.cfg.flush_period_s, 0.1))
            except queue.Empty:
                item = None
            ep = self._episode
            try:
                if item is not None:
                    topic, data, t_ns = item
                    if topic == "end":
                        try:
                            if ep is not None:
                                self._close_episode(ep)
                        finally:
                            data.set()
                        continue
                    if topic == "topic":
                        if ep is not None:
                            ep.add_topic(data)
                        continue
                    self._written += len(data)
                    if ep is not None and ep.accepts(topic):
                        ep.write(topic, data, t_ns)
                now = time.monotonic()
                if ep is not None and now - last_flush >= self.cfg.flush_period_s:
                    ep.flush()
                    last_flush = now
                if ep is not None and now - last_meta >= self.cfg.metadata_period_s:
                    with self._lock:  # info is also changed from the callbacks' thread
                        ep.info.dropped = dict(self._dropped)
                        ep.write_metadata()
                    last_meta = now
            except OSError as e:  # disk full, file too large, I/O error: end the episode
                if ep is not None:
                    self._storage_failed(ep, e)
                else:
                    self.log(f"episode writer: {type(e).__name__}: {e}")
            except Exception as e:  # noqa: BLE001 - the writer must report, not die silently
                self.log(f"episode writer: {type(e).__name__}: {e}")

    def _storage_failed(self, ep: EpisodeWriter, e: OSError) -> None:
        """Writer thread: the episode's storage failed. Recording stops at once (no retry that
        would fail the same way on every message); what reached the disk stays readable."""
        with self._lock:
            if self._episode is ep:
                self._episode = None
                self._recording = False
            ep.info.stop_ns = self.clock()
            ep.info.status = "storage_failed"
            ep.info.dropped = dict(self._dropped)
        ep.abandon()
        try:
            ep.write_metadata()
        except OSError:
            pass
        written = sum(ep.counts.values())
        self.error = (f"{ep.dir}: storage failed ({e.strerror or e}): recording stopped after {written} "
                      "messages; the episode is kept and reads up to its last flushed chunk")
        self.log(self.error)

    def close(self) -> None:
        if self._recording:
            self.stop()
        self._stop.set()
        self._thread.join(timeout=5.0)

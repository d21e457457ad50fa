"""recorder_node: records demonstration episodes as rosbag2 MCAP directories (core:
``rosmind.recording``).

Parameters: the fields of ``rosmind.recording.RecorderConfig``, chiefly ``out_dir``
(default ``data/episodes``; one directory per episode), ``topics`` (names or patterns such as
``camera/*/image_raw``, default the arm's sensors, the commands before and after safety,
``/diagnostics`` and ``episode/outcome``), ``robot``, ``task``, ``instruction``,
``operator``, ``auto_start`` (begin an episode at once) and ``stop_on_outcome`` (the sim's
``episode/outcome`` ends the episode).

Services (std_srvs/Trigger; the response message names the episode directory):
``recorder/start``, ``recorder/stop``, ``recorder/discard`` (stop and delete),
``recorder/mark_success`` (the open episode, or the last stopped one). Topics in:
``recorder/metadata`` (std_msgs/String, a JSON object: ``task``, ``instruction``,
``operator``, ``success``; other keys are kept under ``extra``), ``/diagnostics`` (safety's
``interventions_total`` counts the episode's interventions), ``episode/outcome`` when it is
among the recorded topics (its ``success`` sets the episode's when nobody marked it; with
``stop_on_outcome`` it ends the episode, and with ``auto_start`` too the next one starts).
A ``*`` in a topic pattern matches within one name segment. Topic out: ``recorder/status``
(std_msgs/String JSON, on every change and once a second).

Subscriptions are raw (``raw=True``): callbacks hand CDR bytes and the receive time (system
clock, ns) to the core's writer thread; nothing is deserialized on the hot path. The default
``executor:=events`` (rclpy's C++ events executor) runs callbacks in arrival order and takes
the time there; ``executor:=single`` (rclpy's Python executor, ~60 % more CPU, lost 10 % at
500 Hz in the benchmark) uses the middleware's ``received_timestamp``, since its callback
order is not arrival order. Topics of the rosmind graph with known types (``KNOWN_TYPES``)
are subscribed at startup (reliable), so no first ticks are lost while discovery catches up;
every matching topic is (re)subscribed with what its publishers offer (reliable when all of
them are) once seen in the graph, rescanned every ``discovery_period_s``. Episode start/stop
times in episode.json are on the node's clock (sim time with ``use_sim_time``).
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from std_msgs.msg import String
from std_srvs.srv import Trigger

from rosmind.errors import UserError
from rosmind.recording import KNOWN_TYPES, EpisodeRecorder, RecorderConfig, TopicInfo, qos_dict
from rosmind.schema import camera_topics
from rosmind.spec import load_spec
from rosmind_ros import conversions as cv
from rosmind_ros.params import declare_from_dataclass, run_node

IMAGE_TYPE, CAMERA_INFO_TYPE = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"


def _msg_class(msg_type: str):
    pkg, kind, name = msg_type.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def _policy_name(value) -> str:
    return getattr(value, "name", str(value)).lower()


class RecorderNode(Node):
    # No shutdown deadline (run_node's STOP_DEADLINE_S): draining the queue into the episode
    # file takes what it takes, and cutting it short would lose the episode.
    stop_deadline_s = None

    def make_executor(self):
        """``executor:=events`` (default): rclpy's C++ events executor, a fraction of the
        per-callback cost of the Python executors (what decides whether the recorder keeps up
        at 1000+ messages/s) and callbacks in arrival order; ``single``: rclpy's
        SingleThreadedExecutor."""
        if self.cfg.executor == "events":
            from rclpy.experimental import EventsExecutor

            return EventsExecutor()
        return SingleThreadedExecutor()

    def __init__(self):
        super().__init__("recorder_node")
        self.cfg = cfg = declare_from_dataclass(self, RecorderConfig)
        self.core = EpisodeRecorder(cfg, lambda: self.get_clock().now().nanoseconds,
                                    self.get_logger().error)
        self.patterns = [re.compile("[^/]*".join(map(re.escape, self._resolve(t).split("*"))) + "$")
                         for t in cfg.topics]
        self.outcome_topic = self.resolve_topic_name("episode/outcome")
        self._subs: dict[str, object] = {}
        self._qos: dict[str, tuple[str, bool, bool]] = {}  # topic -> (type, reliable, latched)
        self._confirmed: set[str] = set()  # topics whose publishers' offer was seen
        for name, msg_type in self._known_topics().items():  # subscribed now: no first message lost
            self._subscribe(name, msg_type)
        for name, fn in (("start", self._start), ("stop", self.core.stop),
                         ("discard", self.core.discard), ("mark_success", self.core.mark_success)):
            self.create_service(Trigger, f"recorder/{name}", self._service(fn))
        self.create_subscription(String, "recorder/metadata", self._on_metadata, 10)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.pub_status = self.create_publisher(String, "recorder/status", 10)
        # Steady-clock timers: with use_sim_time a ROS-time timer would not fire before /clock
        # runs, i.e. discovery (offered QoS, late topics) would wait for the first tick.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(cfg.discovery_period_s, lambda: (self._discover(), self._publish_status()), clock=steady)
        self.create_timer(1.0, self._publish_status, clock=steady)
        self._discover()
        if cfg.auto_start:
            self._log_result(*self._start())
        self.get_logger().info(f"recording {list(cfg.topics)} into {cfg.out_dir}/ "
                               f"(services recorder/start|stop|discard|mark_success)")

    def _start(self) -> tuple[bool, str]:
        """Start an episode; it says in episode.json (``extra.unmatched_at_start``) which recorded
        topics had publishers this node did not receive from yet (their first messages may be
        missing; ``wait_for_recorder`` on robot_node waits until there are none)."""
        ok, message = self.core.start()
        if ok:
            missing = self.unmatched()
            self.core.update_metadata({"unmatched_at_start": missing})
            if missing:
                message += f" (not yet receiving from every publisher of {missing})"
        return ok, message

    def _known_topics(self) -> dict[str, str]:
        """Recorded topics whose type is known before discovery: the graph's fixed names, and
        the robot spec's camera topics matched by a pattern such as ``camera/*/image_raw``."""
        out = {self.resolve_topic_name(t): KNOWN_TYPES[t.lstrip("/")]
               for t in self.cfg.topics if "*" not in t and t.lstrip("/") in KNOWN_TYPES}
        try:
            cams = load_spec(self.cfg.robot).sensors_of("rgb", "rgbd")
        except UserError:
            return out
        for cam in cams:
            for channel, topic in camera_topics(cam.name).items():
                name = self.resolve_topic_name(topic)
                if any(p.match(name) for p in self.patterns):
                    out[name] = IMAGE_TYPE if channel in ("rgb", "depth") else CAMERA_INFO_TYPE
        return out

    def _resolve(self, pattern: str) -> str:
        """Namespace a topic pattern the way rcl namespaces a name (``*`` is not a legal name
        character, so it is swapped out for the resolution)."""
        mark = "zzstarzz"
        return self.resolve_topic_name(pattern.replace("*", mark)).replace(mark, "*")

    def _service(self, fn):
        def handle(_req, resp):
            resp.success, resp.message = fn()
            self._log_result(resp.success, resp.message)
            self._publish_status()
            return resp
        return handle

    def _log_result(self, ok: bool, message: str) -> None:
        if ok:  # rclpy refuses two severities from one call site
            self.get_logger().info(message)
        else:
            self.get_logger().warning(message)

    def _subscribe(self, name: str, msg_type: str, reliable: bool = True, latched: bool = False,
                   offered: list | None = None, type_hash: str = "") -> None:
        try:
            cls = _msg_class(msg_type)
        except (ImportError, AttributeError, ValueError):
            self.get_logger().error(f"{name}: message type {msg_type} is not installed; not recorded",
                                    once=True)
            return
        old = self._subs.pop(name, None)
        if old is not None:
            self.destroy_subscription(old)
        qos = QoSProfile(depth=self.cfg.qos_depth,
                         reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
        info = self.core.topics.get(name)
        if info is None or info.msg_type != msg_type or offered is not None:
            self.core.add_topic(TopicInfo(name, msg_type, offered or [], type_hash, offered is not None))
        self._subs[name] = self.create_subscription(cls, name, self._raw_callback(name), qos, raw=True)
        self._qos[name] = (msg_type, reliable, latched)
        self.get_logger().info(f"subscribed {name} [{msg_type}] ({'reliable' if reliable else 'best effort'})")

    def _discover(self) -> None:
        """Subscribe new matching topics; adapt known ones to what their publishers offer."""
        for name, types in self.get_topic_names_and_types():
            if types and name not in self._confirmed and any(p.match(name) for p in self.patterns):
                self._confirm(name, types[0])

    def _confirm(self, name: str, msg_type: str, resubscribe: bool = True) -> None:
        """Record what ``name``'s publishers offer once the graph shows them; subscribe anew
        when they offer other QoS (or another type) than the subscription has, unless
        ``resubscribe`` is false (from inside that subscription's own callback)."""
        pubs = self.get_publishers_info_by_topic(name)
        if not pubs:
            return
        offered = [qos_dict(_policy_name(p.qos_profile.reliability),
                            _policy_name(p.qos_profile.durability), p.qos_profile.depth,
                            _policy_name(p.qos_profile.history)) for p in pubs]
        reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in pubs)
        latched = all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in pubs)
        type_hash = str(pubs[0].topic_type_hash)
        if self._qos.get(name) == (msg_type, reliable, latched):
            # Subscribed in advance and it matches: the episode may now write its channel.
            self._confirmed.add(name)
            self.core.add_topic(TopicInfo(name, msg_type, offered, type_hash, True))
        elif resubscribe:
            self._confirmed.add(name)
            self._subscribe(name, msg_type, reliable, latched, offered, type_hash)

    def _raw_callback(self, topic: str):
        submit = self.core.submit
        if topic == self.outcome_topic:
            def outcome(data: bytes, *_info) -> None:  # recorded first, then it may end the episode
                submit(topic, data, time.time_ns())
                self._on_outcome(deserialize_message(data, String))
            return outcome
        confirmed, last_try = self._confirmed, [0.0]

        def confirm() -> None:
            # A message from a topic whose publishers' QoS is not confirmed yet: look at the
            # graph now (at most every 50 ms) rather than at the next discovery scan, which a
            # backlog of queued messages (lockstep at full speed, cameras) can delay by seconds
            # while the episode holds this topic's messages back.
            now = time.monotonic()
            if now - last_try[0] >= 0.05:
                last_try[0] = now
                self._confirm(topic, self._qos[topic][0], resubscribe=False)

        if self.cfg.executor == "events":  # callbacks run in arrival order (no message info there)
            def on_message(data: bytes) -> None:
                submit(topic, data, time.time_ns())
                if topic not in confirmed:
                    confirm()
            return on_message

        def on_message_info(data: bytes, info) -> None:
            submit(topic, data, info["received_timestamp"])
            if topic not in confirmed:
                confirm()
        return on_message_info

    def _on_metadata(self, msg: String) -> None:
        try:
            values = json.loads(msg.data)
            if not isinstance(values, dict):
                raise ValueError("expected a JSON object")
        except ValueError as e:
            self.get_logger().error(f"recorder/metadata ignored: {e}: {msg.data[:200]!r}")
            return
        self.core.update_metadata(values)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            values = cv.diagnostic_values(st)
            if st.name.startswith("safety_node") and "interventions_total" in values:
                try:
                    self.core.note_interventions(int(values["interventions_total"]))
                except ValueError:
                    pass

    def _on_outcome(self, msg: String) -> None:
        if not self.core.recording:
            return
        try:
            success = bool(json.loads(msg.data).get("success"))
        except (ValueError, AttributeError):
            return
        if "success" not in self.core.meta:
            self.core.update_metadata({"success": success})
        if self.cfg.stop_on_outcome:
            self._log_result(*self.core.stop())
            if self.cfg.auto_start:
                self._log_result(*self._start())
        self._publish_status()

    def unmatched(self) -> list[str]:
        """Recorded topics with publishers on the graph that this node does not yet receive
        from all of them (discovery still under way): what an episode starting now would miss."""
        out = []
        for name, _types in self.get_topic_names_and_types():
            if not any(p.match(name) for p in self.patterns):
                continue
            n = self.count_publishers(name)
            sub = self._subs.get(name)
            if n and (sub is None or sub.get_publisher_count() < n or name not in self._confirmed):
                out.append(name)
        return sorted(out)

    def _publish_status(self) -> None:
        """The core's status, ``unmatched`` (see there) and ``matched``: per subscribed topic,
        how many publishers this node receives from (what robot_node's ``wait_for_recorder``
        compares with the publishers it receives from itself)."""
        matched = {name: sub.get_publisher_count() for name, sub in self._subs.items()}
        self.pub_status.publish(String(data=json.dumps({**self.core.status(), "unmatched": self.unmatched(),
                                                         "matched": matched})))

    def destroy_node(self):
        self.core.close()
        return super().destroy_node()


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_node(RecorderNode, argv))


if __name__ == "__main__":
    main()

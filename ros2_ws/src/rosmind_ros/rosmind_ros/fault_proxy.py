"""fault_proxy: forwards one topic (``topic_in`` -> ``topic_out``) and, while enabled, does one
kind of harm to it (core: ``rosmind.faults``): drop, delay, reorder, duplicate, freeze, or
NaN / inf / out-of-limit / jump positions (JointTrajectory points, Float64MultiArray data,
JointState positions), or stamps moved by ``offset_s`` (``header.stamp``, or ``/clock``). Put it between a publisher and its subscribers by remapping one side:

    python -m rosmind_ros.policy_node --ros-args -r safety/joint_trajectory:=fault/safety/joint_trajectory ...
    python -m rosmind_ros.fault_proxy --ros-args -p topic_in:=fault/safety/joint_trajectory \\
        -p topic_out:=safety/joint_trajectory -p msg_type:=trajectory_msgs/msg/JointTrajectory \\
        -p kind:=nan -p robot:=panda

Service ``~/enable`` (std_srvs/SetBool) turns the fault on and off (``active`` sets the start);
every message the fault touched, and every switch, is reported on ``~/events`` (std_msgs/String
JSON with the wall time ``t``), so a harness knows when the harm began. Messages leave from a
thread of their own at their due time, not on an executor tick. The proxy is a test and
benchmark tool: never part of a graph that drives a robot.
"""

from __future__ import annotations

import importlib
import json
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from std_msgs.msg import String
from std_srvs.srv import SetBool

from rosmind.errors import SpecError
from rosmind.faults import STAMP_KINDS, VALUE_KINDS, FaultConfig, FaultInjector, corrupt_positions
from rosmind.spec import load_spec
from rosmind_ros.params import declare_from_dataclass, run_node

# message type -> (positions [N, D], their joint names or None for the spec's order, write back)
_POSITIONS = {
    "trajectory_msgs/msg/JointTrajectory": (
        lambda m: np.array([list(p.positions) for p in m.points], dtype=np.float64).reshape(len(m.points), -1),
        lambda m: list(m.joint_names),
        lambda m, a: [setattr(p, "positions", row.tolist()) for p, row in zip(m.points, a, strict=True)]),
    "std_msgs/msg/Float64MultiArray": (
        lambda m: np.array(m.data, dtype=np.float64)[None], lambda m: None,
        lambda m, a: setattr(m, "data", a[0].tolist())),
    "sensor_msgs/msg/JointState": (
        lambda m: np.array(m.position, dtype=np.float64)[None], lambda m: list(m.name),
        lambda m, a: setattr(m, "position", a[0].tolist())),
}


@dataclass
class FaultProxyConfig(FaultConfig):
    topic_in: str = ""
    topic_out: str = ""
    msg_type: str = "trajectory_msgs/msg/JointTrajectory"
    robot: str = "panda"  # joint limits for out_of_limits
    active: bool = False  # start with the fault on

    def __post_init__(self):
        super().__post_init__()
        if not self.topic_in or not self.topic_out or self.topic_in == self.topic_out:
            raise SpecError(f"fault_proxy: topic_in and topic_out must be two different names, got "
                            f"{self.topic_in!r} -> {self.topic_out!r}")
        if self.kind in VALUE_KINDS and self.msg_type not in _POSITIONS:
            raise SpecError(f"fault_proxy: fault {self.kind!r} changes positions; {self.msg_type} has none "
                            f"(types with positions: {', '.join(_POSITIONS)})")


def _msg_class(msg_type: str):
    try:
        pkg, kind, name = msg_type.split("/")
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ValueError, ImportError, AttributeError) as e:
        raise SpecError(f"fault_proxy: msg_type {msg_type!r} is not an installed message type ({e})") from None


class FaultProxy(Node):
    def __init__(self):
        super().__init__("fault_proxy")
        self.cfg = cfg = declare_from_dataclass(self, FaultProxyConfig)
        self.cls = _msg_class(cfg.msg_type)
        probe = self.cls()
        self._stamped = hasattr(probe, "header")
        if cfg.kind in STAMP_KINDS and not (hasattr(probe, "clock") or self._stamped):
            raise SpecError(f"fault_proxy: fault {cfg.kind!r} moves stamps; {cfg.msg_type} has no header and is no Clock")
        spec = load_spec(cfg.robot)
        upper = dict(zip(spec.joint_names, spec.limits("upper"), strict=True))
        get, names_of, put = _POSITIONS.get(cfg.msg_type, (None, None, None))

        def corrupt(raw: bytes, kind: str, rng: np.random.Generator):
            msg = deserialize_message(raw, self.cls)
            if kind in STAMP_KINDS:
                t = msg.clock if hasattr(msg, "clock") else msg.header.stamp
                ns = max(0, t.sec * 1_000_000_000 + t.nanosec + int(round(cfg.offset_s * 1e9)))
                t.sec, t.nanosec = divmod(ns, 1_000_000_000)
                return msg
            a = get(msg)
            if a.size:
                names = names_of(msg) or list(spec.joint_names)
                limits = np.array([upper.get(n, 0.0) for n in names[:a.shape[-1]]]
                                  + [0.0] * max(0, a.shape[-1] - len(names)))
                put(msg, corrupt_positions(a, kind, limits, rng))
            return msg

        self.core = FaultInjector(cfg, corrupt)
        self.core.set_active(cfg.active)
        self._cond = threading.Condition()
        self._stop = False
        self.pub = self.create_publisher(self.cls, cfg.topic_out, 10)
        self.pub_events = self.create_publisher(String, "~/events", 50)
        self.create_subscription(self.cls, cfg.topic_in, self._on_message, 10, raw=True)
        self.create_service(SetBool, "~/enable", self._on_enable)
        self._sender = threading.Thread(target=self._send_loop, name="fault_proxy_sender", daemon=True)
        self._sender.start()
        self.get_logger().info(f"{self.resolve_topic_name(cfg.topic_in)} -> {self.resolve_topic_name(cfg.topic_out)}: "
                               f"fault {cfg.kind!r} ({'on' if cfg.active else 'off'}; ~/enable switches it)")

    def _event(self, **values) -> None:
        self.pub_events.publish(String(data=json.dumps({"t": time.time(), **values})))

    def _on_message(self, raw: bytes) -> None:
        with self._cond:
            hit = self.core.push(raw, time.monotonic())
            self._cond.notify()
        if hit:
            self._event(kind=self.cfg.kind, injected=self.core.counts["injected"], **self._stamp_of(raw))

    def _stamp_of(self, raw: bytes) -> dict:
        """The injected message's own header stamp (ns), so that a consumer can match the
        answer it caused (safety's hold carries the refused chunk's stamp) by identity, not by
        arrival order."""
        if not self._stamped:
            return {}
        t = deserialize_message(raw, self.cls).header.stamp
        return {"stamp_ns": t.sec * 1_000_000_000 + t.nanosec}

    def _on_enable(self, req, resp):
        with self._cond:
            self.core.set_active(req.data)
            self._cond.notify()
        self._event(kind=self.cfg.kind, active=bool(req.data))
        resp.success, resp.message = True, f"fault {self.cfg.kind!r} {'on' if req.data else 'off'}"
        return resp

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop:
                    nxt = self.core.next_due()
                    wait = None if nxt is None else nxt - time.monotonic()
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(timeout=wait)
                if self._stop:
                    return
                out = self.core.due(time.monotonic())
            for msg in out:
                self.pub.publish(msg)  # bytes (as received) or a corrupted message

    def destroy_node(self):
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._sender.join(timeout=2.0)
        return super().destroy_node()


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_node(FaultProxy, argv))


if __name__ == "__main__":
    main()

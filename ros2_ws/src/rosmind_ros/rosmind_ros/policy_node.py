"""policy_node: hosts one policy behind a ChunkExecutor and publishes action chunks.

Subscribes the topics of the policy's ``obs_keys`` (``rosmind.schema``) plus ``joint_states``,
whose every message is a control tick. When a tick's observation is complete
(``rosmind.observation.ObservationAssembler``) it plans if the executor asks for it — inference
runs on a worker thread; lockstep waits for it, realtime never blocks: it sends whatever plan
covers the tick, and a fresh plan as soon as it lands (rows whose tick passed are dropped) —
and publishes ``joint_trajectory``:
header.stamp = the tick's observation stamp, the spec's joint order, the planned actions from
this tick on at ``time_from_start = i * dt``.

A subscribed topic silent for ``startup_timeout_s`` stops the node with one error naming it
(exit 2, nothing published). A tick whose inputs are stale is skipped (no command: safety's
watchdog holds) and counted on ``/diagnostics`` with per-stage latency p50/p99 and the stale
topics. Camera frames: any colour encoding (rgb8, bgr8, rgba8, bgra8, mono8) becomes RGB, depth
(16UC1 mm, 32FC1 m) metres; a frame whose shape differs from the manifest's stops the node
naming the topic and both shapes, unless the checkpoint was trained with ``image_resize``. A
checkpoint that reads a camera the robot spec lacks is refused at load.
Serves ``policy/reset`` (Trigger): policy, executor and observation history start over.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray, PoseStamped, Twist, WrenchStamped
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import Image, Imu, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from rosmind import schema
from rosmind.errors import CheckpointError, SpecError, TopicTimeoutError
from rosmind.observation import STAMP_EPS, ObservationAssembler
from rosmind.policies.executors import ChunkExecutorConfig, ResidualExecutor, make_executor
from rosmind.policy import infer_seeded, input_keys
from rosmind.registry import POLICIES
from rosmind.spec import load_spec
from rosmind.stats import latency_summary
from rosmind.timeline import Timeline
from rosmind_ros import conversions as cv
from rosmind_ros.params import declare_from_dataclass, run_node

MSG_CLASSES = {schema.JOINT_STATE: JointState, schema.POSE_STAMPED: PoseStamped,
               schema.POSE_ARRAY: PoseArray, schema.WRENCH_STAMPED: WrenchStamped,
               schema.IMAGE: Image, schema.IMU: Imu, schema.ODOMETRY: Odometry, schema.TWIST: Twist}


@dataclass
class PolicyNodeConfig:
    policy: str = "expert"  # registry name (ignored when a checkpoint names its own)
    checkpoint: str = ""  # checkpoint folder; "" = build the policy from its defaults
    robot: str = "panda"
    mode: Literal["lockstep", "realtime"] = "lockstep"
    max_age_s: float = 0.0  # per-tick topics: 0 = the tick's own stamp
    camera_max_age_s: float = 0.25
    # Command inputs (cmd_vel): older than this (stamped on arrival, node clock) reads as the
    # binding's default (zero velocity: stand still) and /diagnostics names it.
    command_timeout_s: float = 0.5
    startup_timeout_s: float = 10.0
    inference_timeout_s: float = 60.0  # lockstep: the longest a tick waits for one inference
    diagnostics_period_s: float = 1.0
    latency_window: int = 500  # ticks in the latency percentiles
    # Sampling noise: "stream" (one generator for the run) or "episode": each chunk reseeded
    # from the episode seed and the tick since the episode's reset (rosmind.policy.infer_seeded),
    # as `rosmind eval --noise episode` does in direct mode. Episode i (the i-th policy/reset)
    # has seed `seed + i`, the robot_node convention.
    noise: Literal["stream", "episode"] = "stream"
    seed: int = 0
    # JSON of per-message timing at exit (rosmind.timeline): frames received (decode time),
    # inferences (and the frames they used), plans published; "" = none.
    timeline: str = ""
    # A residual policy (ResiP): its per-tick correction on (true) or off, the base alone.
    # Switch it on a running graph: the parameter service (`ros2 param set /policy_node residual false`).
    residual: bool = True

    def __post_init__(self):
        for name in ("startup_timeout_s", "inference_timeout_s", "diagnostics_period_s"):
            if not getattr(self, name) > 0:
                raise SpecError(f"PolicyNodeConfig.{name}: must be > 0, got {getattr(self, name)}")
        if self.max_age_s < 0 or self.camera_max_age_s < 0 or self.latency_window < 1:
            raise SpecError("PolicyNodeConfig: max ages must be >= 0 and latency_window >= 1")


def load_policy(cfg: PolicyNodeConfig, spec):
    """The policy to host; refuses one made for another robot than ``spec``."""
    if cfg.checkpoint:
        from rosmind.checkpoint import load_checkpoint

        # Refuses (CheckpointError) a manifest whose robot name or joint order differs from spec.
        policy = load_checkpoint(cfg.checkpoint, spec)
    else:
        entry = POLICIES.get(cfg.policy)
        policy = entry.factory(entry.config(robot=cfg.robot) if entry.config else None)
    robot = getattr(policy.config, "robot", spec.name)
    if robot != spec.name:
        raise CheckpointError(f"policy {cfg.checkpoint or cfg.policy!r} was made for robot {robot!r}, "
                              f"but this graph runs robot {spec.name!r}")
    return policy


class PolicyNode(Node):
    def __init__(self):
        super().__init__("policy_node")
        self.cfg = cfg = declare_from_dataclass(self, PolicyNodeConfig)
        ex_cfg = declare_from_dataclass(self, ChunkExecutorConfig)
        self.spec = load_spec(cfg.robot)
        self.dt = self.spec.control_period
        self.policy = load_policy(cfg, self.spec)
        self.executor_ = make_executor(self.policy, ex_cfg)
        self._residual = isinstance(self.executor_, ResidualExecutor)
        if self._residual:
            self.executor_.enabled = cfg.residual
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._fast = hasattr(self.executor_, "fast_keys")  # slow-fast: one decode per tick
        self._prefetch0 = ex_cfg.prefetch
        self._recent_infer: deque[float] = deque(maxlen=20)
        keys = input_keys(self.policy.config)  # obs_keys + a fast decoder's inputs
        self.topics = self._topics_for(keys)
        self.topics.setdefault("joint_states", (schema.JOINT_STATE, []))  # the tick, always
        self._command_keys = [k for k in keys if schema.binding(k).default is not None]
        ages = {k: cfg.max_age_s if schema.binding(k).per_tick else cfg.camera_max_age_s for k in keys}
        ages |= dict.fromkeys(self._command_keys, cfg.command_timeout_s)
        # Lockstep: a camera key needs exactly the newest frame its schedule has published.
        self._camera_every = {k: schema.camera_every(self.spec, schema.camera_name(k))
                              for k in keys if schema.camera_name(k)}
        self.asm = ObservationAssembler(keys, self.policy.config.n_obs_steps, ages, self.dt,
                                        defaults={k: np.asarray(schema.binding(k).default) for k in self._command_keys})
        self._seen: set[str] = set()
        self._pending: tuple[float, float] | None = None  # (tick stamp, wall time it arrived)
        self._last: tuple[float, JointTrajectory | None] | None = None  # last processed tick
        self._now = (0, 0.0)  # the newest tick handled and its stamp (one tuple: read atomically)
        self._generation = 0  # bumped by reset: a plan from before it is dropped
        self._episode = -1  # policy/reset calls so far - 1 (the episode index, for noise:=episode)
        self._tick0: int | None = None
        self._error: BaseException | None = None
        self.skipped_stale = 0
        self._stale_keys: list[str] = []
        self._camera_keys = [k for k in keys if schema.camera_name(k)]
        stages = (("obs", "inference", "publish", "e2e") + (("decode", "image_age") if self._camera_keys else ())
                  + (("fast",) if self._fast else ()))
        self._rates = {"slow": deque(maxlen=50), "fast": deque(maxlen=200)}  # monotonic times of each loop
        self.lat = {s: deque(maxlen=cfg.latency_window) for s in stages}
        self.timeline = Timeline() if cfg.timeline else None
        self._recv_at: dict[tuple[str, int], float] = {}  # (camera topic, stamp ns) -> arrival (monotonic)
        for topic, (msg_type, tkeys) in self.topics.items():
            self.create_subscription(MSG_CLASSES[msg_type], topic,
                                     lambda m, t=topic, mt=msg_type, k=tkeys: self._on_msg(t, mt, k, m), 10)
        self.pub = self.create_publisher(JointTrajectory, "joint_trajectory", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(Trigger, "policy/reset", self._on_reset)
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._started = time.monotonic()
        self._startup_timer = self.create_timer(0.2, self._check_startup, clock=steady)
        self.create_timer(cfg.diagnostics_period_s, self._diagnostics, clock=steady)
        self.get_logger().info(f"hosting policy {cfg.checkpoint or cfg.policy!r} ({cfg.mode}); "
                               f"topics {sorted(self.topics)}")

    def _topics_for(self, keys) -> dict:
        """Topics of the checkpoint's observation keys; a camera or sensor (wrench, imu) the robot
        lacks is refused here, at load, naming it and the topic the policy would wait for."""
        for k in keys:
            cam = schema.camera_name(k)
            try:
                schema.binding(k, self.spec)
            except SpecError as e:
                if cam is None:
                    raise SpecError(f"{self.cfg.checkpoint or self.cfg.policy}: {e}") from None
                have = [c.name for c in self.spec.sensors_of("rgb", "rgbd")]
                raise SpecError(f"{self.cfg.checkpoint or self.cfg.policy}: the policy reads {k!r} from camera "
                                f"{cam!r} (topic {self.resolve_topic_name(schema.binding(k).topic)}), which robot "
                                f"{self.spec.name!r} does not provide (its cameras: {have}): {e}") from None
        return schema.topics_for(keys, self.spec)

    def _check_startup(self) -> None:
        missing = [t for t in self.topics if t not in self._seen]
        if not missing:
            self._startup_timer.cancel()
        elif time.monotonic() - self._started > self.cfg.startup_timeout_s:
            names = ", ".join(f"{self.resolve_topic_name(t)} ({self.topics[t][0]})" for t in missing)
            raise TopicTimeoutError(
                f"no message on topic(s) {names} within startup_timeout_s={self.cfg.startup_timeout_s:g} s; "
                f"is robot_node running, in the same ROS_DOMAIN_ID and namespace as this node?")

    def _decode(self, msg_type: str, keys: list[str], msg) -> dict:
        if msg_type == schema.IMAGE:
            return {k: self._taxels(k, msg) if k.startswith("tactile/") else self._frame(k, msg) for k in keys}
        decode = cv.DECODERS[msg_type]
        try:
            d = decode(msg, keys, self.spec.joint_names)
        except KeyError as e:
            raise SpecError(f"joint_states does not match robot {self.spec.name!r}: {e.args[0]}") from None
        return {k: d[k] for k in keys}

    def _taxels(self, key: str, msg) -> np.ndarray:
        """A taxel pad's reading, of the manifest's shape (else refused naming the topic)."""
        topic = self.resolve_topic_name(key)
        try:
            a = cv.tactile_to_numpy(msg)
        except ValueError as e:
            raise SpecError(f"{topic} ({key}): {e}") from None
        want = tuple(self.policy.config.obs_shapes.get(key, a.shape))
        if a.shape != want:
            raise SpecError(f"{topic} ({key}): taxel image {list(a.shape)} differs from the checkpoint's {list(want)}")
        return a

    def _frame(self, key: str, msg) -> np.ndarray:
        """A camera frame as the checkpoint wants it: RGB uint8 or depth in metres, of the
        manifest's shape (resized only where the manifest says ``image_resize``)."""
        rel = schema.binding(key).topic
        topic = self.resolve_topic_name(rel)
        t0 = time.monotonic()
        try:
            a = cv.image_to_rgb(msg) if key.endswith("/rgb") else cv.depth_to_metres(msg)
        except ValueError as e:
            raise SpecError(f"{topic} ({key}): {e}") from None
        decode = time.monotonic() - t0
        self.lat["decode"].append(decode)
        self._recv_at[(rel, cv.to_ns(msg.header.stamp))] = t0
        if len(self._recv_at) > 64:
            self._recv_at.pop(next(iter(self._recv_at)))
        if self.timeline is not None:
            self.timeline.mark("recv", rel, cv.to_ns(msg.header.stamp), mono_s=t0, value_s=decode)
        want = tuple(self.policy.config.obs_shapes.get(key, a.shape))
        if a.shape != want:
            if not getattr(self.policy.config, "image_resize", False):
                raise SpecError(f"{topic} ({key}): frame {list(a.shape)} ({msg.encoding}) differs from the "
                                f"checkpoint's {list(want)}; render/stream the camera at {want[1]}x{want[0]} "
                                f"or use a checkpoint trained with image_resize")
            import cv2

            a = cv2.resize(a, (want[1], want[0]), interpolation=cv2.INTER_AREA)
        return a

    def _on_msg(self, topic: str, msg_type: str, keys: list[str], msg) -> None:
        # Command messages (Twist) carry no header: they count from when they arrive.
        t = cv.to_sec(msg.header.stamp) if hasattr(msg, "header") else self.get_clock().now().nanoseconds * 1e-9
        self._seen.add(topic)
        for k, v in self._decode(msg_type, keys, msg).items():
            self.asm.add(k, t, v)
        if topic == "joint_states":
            if self._last is not None and abs(t - self._last[0]) <= STAMP_EPS:
                if self._last[1] is not None:  # the robot re-sent a tick: answer it again
                    self.pub.publish(self._last[1])
                return
            newest = max((x[0] for x in (self._last, self._pending) if x is not None), default=-1.0)
            if t < newest - STAMP_EPS:  # older than a tick already seen: nothing to command
                return
            if self._pending is not None and t > self._pending[0] + STAMP_EPS:
                self._skip(self._pending[0])
            if self._pending is None or t > self._pending[0] + STAMP_EPS:
                self._pending = (t, time.perf_counter())
        if self._pending is not None and self.asm.ready(self._pending[0], self._ages(self._pending[0])):
            t_tick, arrived = self._pending
            self._pending = None
            self._process(t_tick, arrived)

    def _ages(self, t: float) -> dict[str, float] | None:
        """Per-tick max ages in lockstep (camera schedule); None = the configured ages."""
        if self.cfg.mode != "lockstep" or not self._camera_every:
            return None
        k = round(t / self.dt)
        return {key: (k % m) * self.dt for key, m in self._camera_every.items()}

    def _skip(self, t: float) -> None:
        self.skipped_stale += 1
        keys = self.asm.stale(t, self._ages(t))
        changed, self._stale_keys = keys != self._stale_keys, keys
        self.get_logger().warn(f"tick t={t:.3f} skipped: stale input(s) {self._stale_keys}",
                               throttle_duration_sec=1.0)
        if changed:
            # Name a newly stale input now (and its end, in _process), not at the next periodic
            # report: a stall shorter than diagnostics_period_s went unreported in a CI run. At
            # most once per tick, as the set of stale inputs can change only once per tick.
            self._diagnostics()

    def _infer(self, obs: dict, tick: int, generation: int, arrived: float, frames: dict | None = None) -> None:
        t0 = time.perf_counter()
        start = time.monotonic()
        for topic, stamp in (frames or {}).items():
            arrived_at = self._recv_at.get((topic, cv.to_ns(cv.stamp(stamp))))
            if arrived_at is not None:  # wall time from the frame's arrival to its use
                self.lat["image_age"].append(start - arrived_at)
            if self.timeline is not None:  # value: the frame's age in sim time at this tick
                self.timeline.mark("used", topic, cv.to_ns(cv.stamp(stamp)), mono_s=start,
                                   value_s=tick * self.dt - stamp)
        seed = self.cfg.seed + self._episode if self.cfg.noise == "episode" and self._episode >= 0 else None
        out = infer_seeded(self.policy, obs, seed, tick - (self._tick0 or 0))
        self.lat["inference"].append(time.perf_counter() - t0)
        self._rates["slow"].append(time.monotonic())
        if self.cfg.mode == "realtime":
            self._adapt_prefetch(time.perf_counter() - t0)
        if self.timeline is not None:
            self.timeline.mark("infer", "inference", cv.to_ns(cv.stamp(tick * self.dt)), mono_s=start,
                               value_s=time.perf_counter() - t0)
        if generation != self._generation:
            return
        now_tick, now_t = self._now
        self.executor_.add_output(out, obs, tick, now_tick=now_tick)
        if self.cfg.mode == "realtime":
            # Send the fresh plan now rather than at the next tick: from the newest tick on
            # (rows whose tick passed are dropped), stamped with that tick's observation.
            self._publish_plan(now_tick, now_t, arrived if now_tick == tick else None)

    def _on_set_parameters(self, params):
        from rcl_interfaces.msg import SetParametersResult

        for prm in params:
            if prm.name == "residual":
                if not isinstance(prm.value, bool):
                    return SetParametersResult(successful=False, reason="residual: true or false")
                if self._residual:
                    self.executor_.enabled = prm.value
                    self.get_logger().info(f"residual {'on' if prm.value else 'off (the base alone)'}")
        return SetParametersResult(successful=True)

    def _adapt_prefetch(self, seconds: float) -> None:
        """Realtime: ask for the next chunk as many ticks early as recent inferences took, so a
        plan lands before the current one runs out (never less than the configured prefetch,
        at most n_action_steps - 1). Lockstep keeps the configured value: it must plan on the
        same ticks as direct evaluation."""
        self._recent_infer.append(seconds)
        need = math.ceil(max(self._recent_infer) / self.dt + 0.5)
        n_act = self.executor_.config.n_action_steps or self.policy.config.n_action_steps
        self.executor_.config.prefetch = max(self._prefetch0, min(n_act - 1, need))

    def _publish_plan(self, tick: int, t: float, arrived: float | None) -> JointTrajectory | None:
        """Publish the planned actions from ``tick`` on, stamped ``t``; None if none cover it."""
        if self.executor_.action(tick) is None:
            return None
        t1 = time.perf_counter()
        msg = cv.joint_trajectory(self.spec.joint_names, self.executor_.planned(tick), t, self.dt)
        sent_at = time.monotonic()  # before publish: the receiver may run before it returns
        self.pub.publish(msg)
        done = time.perf_counter()
        self.lat["publish"].append(done - t1)
        if self.timeline is not None:
            self.timeline.mark("plan", "joint_trajectory", cv.to_ns(msg.header.stamp), mono_s=sent_at,
                               value_s=done - t1)
        if arrived is not None:
            self.lat["e2e"].append(done - arrived)
        return msg

    def _process(self, t: float, arrived: float) -> None:
        if self._error is not None:
            raise self._error
        t0 = time.perf_counter()
        tick = round(t / self.dt)
        if self._stale_keys:  # inputs are fresh again: /diagnostics names only what is stale now
            self._stale_keys = []
            self._diagnostics()
        if self._tick0 is None:
            self._tick0 = tick  # the episode's first tick (lockstep: robot_node's tick 0 after reset)
        self._now = (tick, t)
        obs = self.asm.history(t)
        self.executor_.observe(obs, tick)
        self.lat["obs"].append(time.perf_counter() - t0)
        if self.executor_.wants_inference(tick):
            self.executor_.request()
            frames = {schema.binding(k).topic: self.asm.stamp_at(k, t) for k in self._camera_keys}
            fut = self.worker.submit(self._infer, obs, tick, self._generation, arrived, frames)
            if self.cfg.mode == "lockstep":
                fut.result(timeout=self.cfg.inference_timeout_s)
            else:
                fut.add_done_callback(self._note_error)
        if self._fast:  # the fast loop: this tick's row, decoded from the tick's force sample
            t1 = time.perf_counter()
            if self.executor_.action(tick) is not None:
                decode = time.perf_counter() - t1
                self.lat["fast"].append(decode)
                self._rates["fast"].append(time.monotonic())
                if self.timeline is not None:
                    self.timeline.mark("fast", "fast", cv.to_ns(cv.stamp(t)), value_s=decode)
        self._last = (t, self._publish_plan(tick, t, arrived))

    def _note_error(self, fut) -> None:
        if fut.exception() is not None:
            self._error = fut.exception()

    def _on_reset(self, _req, resp):
        def reset():
            self._generation += 1
            self._episode += 1
            self._tick0 = None
            self.executor_.reset()
        self.worker.submit(reset).result()  # on the worker: never during an inference
        self.asm.reset()
        self._pending, self._last = None, None
        resp.success, resp.message = True, "policy, executor and observation history reset"
        return resp

    def _diagnostics(self) -> None:
        stale_topics = sorted({self.resolve_topic_name(schema.binding(k).topic) for k in self._stale_keys})
        t_now = self._now[1]
        stale_commands = [k for k in self._command_keys if not self.asm.is_fresh(k, max(t_now, 0.0))]
        values = {"prefetch_ticks": self.executor_.config.prefetch, "skipped_stale_ticks": self.skipped_stale, "stale_keys": ",".join(self._stale_keys),
                  "stale_commands": ",".join(stale_commands),
                  "command_clamped": str(bool(getattr(self.policy, "last_clamped", False))).lower(),
                  "stale_topics": ",".join(stale_topics),
                  "dropped_late_rows": self.executor_.dropped_rows, "mode": self.cfg.mode}
        if self._residual:
            values["residual"] = "on" if self.executor_.enabled else "off"
        if self._fast:
            values["fast_held_ticks"] = self.executor_.held_ticks
            values["fast_input_stale"] = str(self.executor_.fast_stale).lower()
            for loop, times in self._rates.items():
                span = times[-1] - times[0] if len(times) > 1 else 0.0
                values[f"{loop}_loop_hz"] = f"{(len(times) - 1) / span:.2f}" if span > 0 else "0"
        for stage, samples in self.lat.items():
            s = latency_summary(list(samples))
            values[f"{stage}_p50_ms"], values[f"{stage}_p99_ms"] = f"{s['p50']:.3f}", f"{s['p99']:.3f}"
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        held = self._fast and (self.executor_.held_ticks or self.executor_.fast_stale)
        level = ("WARN" if self.skipped_stale or stale_commands or held or getattr(self.policy, "last_clamped", False)
                 else "OK")
        msg.status = [cv.diagnostic_status(f"{self.get_name()}: policy", level,
                                           f"{self.cfg.checkpoint or self.cfg.policy}", values, self.spec.name)]
        self.diag_pub.publish(msg)

    def destroy_node(self):
        self.worker.shutdown(wait=True, cancel_futures=True)
        if self.timeline is not None:
            self.timeline.write(self.cfg.timeline)
        if hasattr(self.policy, "close"):
            self.policy.close()
        return super().destroy_node()


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_node(PolicyNode, argv))


if __name__ == "__main__":
    main()

"""robot_node: hosts one Robot (the PyBullet sim here) on the robot's ROS 2 topics.

Publishes each control tick, stamped with sim time: ``/clock``, ``joint_states`` (a policy
treats it as the tick and waits for the tick's other topics), ``ee_pose``, ``wrench``,
``object_poses``, ``goal_pose`` (arms), ``imu``, ``odom`` (quadrupeds). Cameras publish
``camera/<n>/image_raw`` (rgb8), ``camera/<n>/depth/image_raw`` (32FC1) and
``camera/<n>/camera_info`` + ``camera/<n>/depth/camera_info`` (same stamp as their images) on ticks ``k % schema.camera_every == 0`` (their own rate). Consumes ``joint_trajectory`` and ``forward_position_controller/commands``;
serves ``reset`` (Trigger: end this episode, start the next seed); publishes
``episode/outcome`` (JSON) and ``/diagnostics``.

Modes: ``lockstep`` publishes tick k, then steps once the tick's answer arrived: a trajectory
stamped t_k (its first point), any position command, or an empty trajectory stamped t_k (hold,
the ros2_control convention). A command for t_k seen on ``lockstep_upstream`` (safety's input)
that does not come through within ``lockstep_grace_s`` was refused by safety: hold
(``safety_holds``). Nothing within ``lockstep_timeout_s``: hold, count a missed command. The
tick is re-sent every ``lockstep_retry_s`` meanwhile (a subscriber discovered late gets it).
``realtime`` steps on the wall clock at the control rate (late ticks and start jitter counted).
The control loop (``rosmind.bridge.SimLoop``, no ROS there, like the setpoint choice and the
episode bookkeeping) runs in its own thread; callbacks run on the node's executor. Episode i uses seed
``seed + i``; sim time (``/clock`` and stamps) keeps running across episodes.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray, PoseStamped, WrenchStamped
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState, PointCloud2
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from rosmind.bridge import CommandMailbox, EpisodeLog, EpisodeResult, SimLoop, episode_line
from rosmind.errors import SpecError
from rosmind.schema import camera_every, camera_topics
from rosmind.sim.perturb import NoisyObservations, ObservationNoise, parse_task_options
from rosmind.sim.robots import default_task, make_sim
from rosmind.stats import latency_summary
from rosmind.timeline import Timeline
from rosmind_ros import conversions as cv
from rosmind_ros.params import declare_from_dataclass, run_node


@dataclass
class RobotNodeConfig:
    robot: str = "panda"
    task: str = ""  # "" = the robot's default task
    # or "mujoco" (quadrupeds: the model the RL env trains on); "hardware" runs hardware_node
    # (a real robot through its driver, rosmind.hardware.drivers) in this node's place.
    backend: str = "pybullet"
    terrain: str = ""  # mujoco: flat (default), rough, slopes, stairs, mixed
    # Perturbations (rosmind eval --task-option/--obs-noise): "key=value,key=value" task config
    # overrides, and "selector=std,..." Gaussian noise on what is published (rosmind.sim.perturb).
    task_options: str = ""
    obs_noise: str = ""
    mode: Literal["lockstep", "realtime"] = "lockstep"
    seed: int = 0  # episode i uses seed + i
    episodes: int = 0  # 0 = forever
    cameras: bool = True  # rendering costs ~2-3 ms a frame (rosmind bench render); tests turn it off
    camera_names: str = ""  # "wrist,scene": render only these ("" = every camera of the spec)
    # "scene,...": also publish camera/<name>/points (PointCloud2 in the base frame, cropped to
    # the spec's workspace, coloured), from each camera's depth (rosmind.pointcloud).
    point_clouds: str = ""
    point_cloud_voxel_m: float = 0.0  # > 0: one averaged point per voxel of this size
    lockstep_timeout_s: float = 10.0  # wall seconds to wait for a tick's command (slow policies)
    lockstep_retry_s: float = 0.5  # re-publish the tick this often while waiting (discovery races)
    # Lockstep: a command for the tick seen here that does not come through safety within
    # lockstep_grace_s was refused by safety: hold at once instead of waiting for the timeout.
    lockstep_upstream: str = "safety/joint_trajectory"  # "" = no such shortcut
    lockstep_grace_s: float = 0.5
    policy_wait_s: float = 10.0  # wait this long for policy/reset before the first episode
    # Before the first tick, wait (up to policy_wait_s) until joint_states has this many matched
    # subscribers, e.g. 3 = policy + safety + recorder: a lockstep run is so fast that a
    # recorder still in DDS discovery would miss its first second.
    min_subscribers: int = 0
    # Then this much more before the first tick, for endpoints robot_node cannot see match
    # (e.g. safety_node's commands -> a recorder).
    start_delay_s: float = 0.0
    # Before the first tick, wait (up to policy_wait_s) until recorder_node reports on
    # recorder/status that it is recording and receives every recorded topic that has
    # publishers ("unmatched" empty): the first episode then loses no message to discovery.
    wait_for_recorder: bool = False
    results: str = ""  # JSON path written after the last episode
    video: str = ""  # MP4 of the first episode, from video_camera at the control rate ("" = none)
    video_camera: str = "scene"
    diagnostics_period_s: float = 1.0
    # JSON of per-message timing (rosmind.timeline): camera frames (render time, publish time)
    # and commands received, by stamp, for `rosmind bench camera_graph` ("" = none).
    timeline: str = ""

    def __post_init__(self):
        for name in ("lockstep_timeout_s", "lockstep_retry_s", "lockstep_grace_s", "diagnostics_period_s"):
            if not getattr(self, name) > 0:
                raise SpecError(f"RobotNodeConfig.{name}: must be > 0, got {getattr(self, name)}")
        if self.episodes < 0 or self.policy_wait_s < 0:
            raise SpecError("RobotNodeConfig: episodes and policy_wait_s must be >= 0")


class RobotNode(Node):
    def __init__(self):
        super().__init__("robot_node")
        self.cfg = cfg = declare_from_dataclass(self, RobotNodeConfig)
        self.sim = make_sim(cfg.robot, cfg.task or None, backend=cfg.backend, terrain=cfg.terrain or None,
                            **self._task_options(cfg))
        if cfg.obs_noise:
            self.sim = NoisyObservations(self.sim, ObservationNoise.parse(cfg.obs_noise, self.sim.spec))
        self.sim.connect()
        self.spec = self.sim.spec
        self.dt = self.spec.control_period
        self.exit_code: int | None = None
        self.mailbox = CommandMailbox(self.spec.dof)
        self.log = EpisodeLog(cfg.robot, cfg.task or default_task(cfg.robot, cfg.backend), cfg.mode, cfg.seed)
        keys = set(self.sim.read())
        pub = self.create_publisher
        self.pubs = {"clock": pub(Clock, "/clock", 10), "joint_states": pub(JointState, "joint_states", 10),
                     "outcome": pub(String, "episode/outcome", 10),
                     "diagnostics": pub(DiagnosticArray, "/diagnostics", 10)}
        for key, msg, topic in (("ee_pose", PoseStamped, "ee_pose"), ("wrench", WrenchStamped, "wrench"),
                                ("object_poses", PoseArray, "object_poses"),
                                ("goal_pose", PoseStamped, "goal_pose"),
                                ("imu_orientation", Imu, "imu"), ("odom_pose", Odometry, "odom")):
            if key in keys:
                self.pubs[topic] = pub(msg, topic, 10)
        self.tactile = sorted(k for k in keys if k.startswith("tactile/"))  # taxel pads: topic = key
        for key in self.tactile:
            self.pubs[key] = pub(Image, key, 10)
        self.cameras = self._cameras(cfg)
        self.point_clouds = [c for c in cfg.point_clouds.split(",") if c.strip()]
        for c in self.point_clouds:
            if c not in [s.name for s in self.cameras if s.kind == "rgbd"]:
                raise SpecError(f"point_clouds: {c!r} is not a rendered depth camera of {self.spec.name!r} "
                                f"(rendered: {[s.name for s in self.cameras if s.kind == 'rgbd']}; cameras:={cfg.cameras})")
            self.pubs[f"camera/{c}/points"] = pub(PointCloud2, f"camera/{c}/points", 5)
        for s in self.cameras:
            names = camera_topics(s.name)
            self.pubs[names["rgb"]] = pub(Image, names["rgb"], 5)
            self.pubs[names["info"]] = pub(CameraInfo, names["info"], 5)
            if s.kind == "rgbd":
                self.pubs[names["depth"]] = pub(Image, names["depth"], 5)
                self.pubs[names["depth_info"]] = pub(CameraInfo, names["depth_info"], 5)
        self._command_subs = [
            self.create_subscription(JointTrajectory, "joint_trajectory", self._on_trajectory, 10),
            self.create_subscription(Float64MultiArray, "forward_position_controller/commands",
                                     self._on_commands, 10)]
        if cfg.mode == "lockstep" and cfg.lockstep_upstream:
            self._command_subs.append(self.create_subscription(
                JointTrajectory, cfg.lockstep_upstream,
                lambda m: self.mailbox.note_upstream(cv.to_sec(m.header.stamp)), 10))
        self.create_service(Trigger, "reset", self._on_reset)
        self._recorder: dict = {}
        if cfg.wait_for_recorder:
            self.create_subscription(String, "recorder/status", self._on_recorder_status, 10)
        # A service client on its own node and single-threaded executor: calls from the loop
        # thread then never wait on this node's executor.
        self._client_node = Node("robot_node_policy_client", namespace=self.get_namespace(),
                                 context=self.context, use_global_arguments=False)
        self._client = self._client_node.create_client(Trigger, "policy/reset")
        self._client_exec = SingleThreadedExecutor(context=self.context)
        self._client_exec.add_node(self._client_node)
        self.loop = SimLoop(self.sim, self.mailbox, cfg.mode, self._publish_tick,
                            timeout_s=cfg.lockstep_timeout_s, retry_s=cfg.lockstep_retry_s,
                            grace_s=cfg.lockstep_grace_s if cfg.lockstep_upstream else None,
                            after_tick=self._diagnostics,
                            align=math.lcm(1, *(camera_every(self.spec, c.name) for c in self.cameras)))
        self._rejected = 0
        self._reject_logged: dict[str, float] = {}
        self._warned_no_policy = False
        self._window_start, self._window_tick = time.monotonic(), 0
        # Round trip sensor -> policy -> safety -> robot: wall time from publishing a tick to
        # receiving the first trajectory stamped with it.
        self._sent_at: dict[int, float] = {}  # tick stamp (ns) -> monotonic time published
        self._sent_lock = threading.Lock()
        self._round_trip: deque[float] = deque(maxlen=2000)
        self.timeline = Timeline() if cfg.timeline else None
        self._video = None
        if cfg.video:
            from rosmind.sim.evaluate import VideoWriter

            self.spec.sensor(cfg.video_camera)  # a clear error for a camera the robot lacks
            self._video = VideoWriter(cfg.video, self.spec.control_rate_hz)
        self._thread = threading.Thread(target=self._run, name="robot_loop", daemon=True)
        self._thread.start()

    @staticmethod
    def _task_options(cfg: RobotNodeConfig) -> dict:
        if not cfg.task_options:
            return {}
        return parse_task_options(cfg.task_options, cfg.task or default_task(cfg.robot, cfg.backend))

    def _reject(self, why: str) -> None:
        """Count and log (once a second per topic) a command that is not applied."""
        self._rejected += 1
        topic, now = why.split(":", 1)[0], time.monotonic()
        if now - self._reject_logged.get(topic, -1e9) >= 1.0:
            self._reject_logged[topic] = now
            self.get_logger().error(f"rejected command: {why}")

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:  # empty: hold (the ros2_control convention)
            pos, times = cv.checked_trajectory(msg, self.spec.joint_names, self.spec.name)
        except ValueError as e:
            return self._reject(str(e))
        if not len(times):
            return self.mailbox.put_trajectory(cv.to_sec(msg.header.stamp), times, pos)
        if self.timeline is not None:
            self.timeline.mark("command", "joint_trajectory", cv.to_ns(msg.header.stamp))
        with self._sent_lock:
            sent = self._sent_at.pop(cv.to_ns(msg.header.stamp), None)
        if sent is not None:
            self._round_trip.append(time.monotonic() - sent)
        self.mailbox.put_trajectory(cv.to_sec(msg.header.stamp), times, pos)

    def _on_commands(self, msg: Float64MultiArray) -> None:
        try:
            self.mailbox.put_position(cv.checked_positions(msg, self.spec.joint_names))
        except ValueError as e:
            self._reject(str(e))

    def _on_recorder_status(self, msg: String) -> None:
        try:
            self._recorder = json.loads(msg.data)
        except ValueError:
            pass

    def _recorder_ready(self) -> bool:
        """Recording, no topic it knows publishers of unmatched, and every command publisher this
        node receives from matched there too: the recorder's graph can lag this node's by
        seconds (a missed DDS participant announcement), and then it does not know the
        policy's and safety's publishers at all, so its "unmatched" alone says nothing of them."""
        rec = self._recorder
        if not rec.get("recording") or rec.get("unmatched", [""]):
            return False
        matched = rec.get("matched", {})
        for sub in self._command_subs:
            name = sub.topic_name
            if name in matched and matched[name] < sub.get_publisher_count():
                return False
        return True

    def _on_reset(self, _req, resp):
        self.loop.reset_requested.set()
        resp.success, resp.message = True, "the current episode ends; the next seed starts"
        return resp

    # The startup waits below watch loop.stop, so a SIGINT meanwhile stops the node at once
    # (destroy_node joins this thread within run_node's shutdown deadline).
    def _wait_for_subscribers(self, wait_s: float) -> None:
        pub, end, stop = self.pubs["joint_states"], time.monotonic() + wait_s, self.loop.stop
        while (pub.get_subscription_count() < self.cfg.min_subscribers and time.monotonic() < end
               and not stop.wait(0.05)):
            pass
        if stop.is_set():
            return
        if pub.get_subscription_count() < self.cfg.min_subscribers:
            self.get_logger().warn(f"joint_states has {pub.get_subscription_count()} subscribers after "
                                   f"{wait_s:.1f} s (min_subscribers={self.cfg.min_subscribers}); starting")
        if self.cfg.wait_for_recorder:
            while not self._recorder_ready() and time.monotonic() < end and not stop.wait(0.05):
                pass
            if not self._recorder_ready() and not stop.is_set():
                self.get_logger().warn(f"recorder not ready after {wait_s:.1f} s (status {self._recorder or 'none'}); "
                                       "starting: the episode may miss messages of the topics named")
        stop.wait(self.cfg.start_delay_s)

    def _policy_service_ready(self, wait_s: float) -> bool:
        end = time.monotonic() + wait_s
        while not self.loop.stop.is_set():
            if self._client.wait_for_service(timeout_sec=min(0.1, max(end - time.monotonic(), 0.0))):
                return True
            if time.monotonic() >= end:
                return False
        return False

    def _reset_policy(self, wait_s: float) -> None:
        if not self._policy_service_ready(wait_s):
            if self.loop.stop.is_set():
                return
            if not self._warned_no_policy:
                self._warned_no_policy = True
                self.get_logger().warn(f"no policy/reset service after {wait_s:.1f} s; running without it")
            return
        future, end = self._client.call_async(Trigger.Request()), time.monotonic() + 5.0
        while not (future.done() or self.loop.stop.is_set()) and time.monotonic() < end:
            self._client_exec.spin_once(timeout_sec=0.1)
        if not (future.done() or self.loop.stop.is_set()):
            self.get_logger().warn("policy/reset did not answer within 5 s")

    def _cameras(self, cfg: RobotNodeConfig) -> list:
        if not cfg.cameras:
            return []
        every = self.spec.sensors_of("rgb", "rgbd")
        names = [c.strip() for c in cfg.camera_names.split(",") if c.strip()]
        for n in names:
            if n not in [s.name for s in every]:
                raise SpecError(f"camera_names: robot {self.spec.name!r} has no camera {n!r}; "
                                f"its cameras: {[s.name for s in every]}")
        return [s for s in every if not names or s.name in names]

    def _points(self, name: str, rgb, depth, k: dict, t: float):
        from rosmind.pointcloud import depth_to_points

        ws = self.spec.workspace
        crop = (ws.min, ws.max) if ws is not None else None
        pts, cols = depth_to_points(depth, k, self.sim.camera_pose(name), rgb=rgb, crop=crop,
                                    voxel=self.cfg.point_cloud_voxel_m or None)
        return self.pubs[f"camera/{name}/points"], cv.point_cloud(pts, cols, t, self.spec.base_frame)

    def _publish_tick(self, obs: dict, t: float) -> Callable[[], None]:
        """Build and publish tick ``t``'s messages; returns a function that re-sends them."""
        base, st = self.spec.base_frame, cv.stamp(t)
        # joint_states right after /clock: safety_node should measure the robot (after a reset
        # too) before the policy's command for this tick reaches it.
        # Camera frames before both: a realtime policy that plans as soon as the tick's joint_states
        # arrive then has the tick's own frame, not the one before (lockstep waits for it anyway).
        out: list = []
        rendered: dict[int, tuple[str, float]] = {}  # id(msg) -> (topic, render seconds)
        for s in self.cameras:
            if self.loop.tick % camera_every(self.spec, s.name):
                continue
            names = camera_topics(s.name)
            t_render = time.perf_counter()
            rgb, depth = self.sim.render(s.name)
            t_render = time.perf_counter() - t_render
            k = self.sim.camera_intrinsics(s.name)
            # The sim's depth is rendered from the colour camera itself (RealSense's aligned
            # depth): both CameraInfos are the same model, frame and stamp as their images.
            info = cv.camera_info(k["width"], k["height"], k["fx"], k["fy"], k["cx"], k["cy"], t, s.frame_id)
            out += [(self.pubs[names["rgb"]], cv.image(rgb, "rgb8", t, s.frame_id)), (self.pubs[names["info"]], info)]
            rendered[id(out[-2][1])] = (names["rgb"], t_render)
            if s.kind == "rgbd":
                out += [(self.pubs[names["depth"]], cv.image(depth, "32FC1", t, s.frame_id)),
                        (self.pubs[names["depth_info"]], info)]
            if s.name in self.point_clouds:
                out.append(self._points(s.name, rgb, depth, k, t))
        out += [(self.pubs["clock"], Clock(clock=st)), (self.pubs["joint_states"], cv.joint_state(
            self.spec.joint_names, obs["joint_pos"], obs["joint_vel"], obs["joint_effort"], t))]
        if "ee_pose" in obs:
            out.append((self.pubs["ee_pose"], cv.pose_stamped(obs["ee_pose"], t, base)))
        if "wrench" in obs:
            frame = self.spec.sensor("wrench").frame_id if self.spec.sensors_of("wrench") else base
            out.append((self.pubs["wrench"], cv.wrench_stamped(obs["wrench"], t, frame)))
        for key in self.tactile:
            pad = self.spec.sensor(key.split("/", 1)[1])
            out.append((self.pubs[key], cv.image(obs[key], "32FC3", t, pad.frame_id)))
        if "object_poses" in obs:
            out.append((self.pubs["object_poses"], cv.pose_array(obs["object_poses"], t, base)))
        if "goal_pose" in obs:
            out.append((self.pubs["goal_pose"], cv.pose_stamped(obs["goal_pose"], t, base)))
        if "imu_orientation" in obs:
            imu_frame = next((s.frame_id for s in self.spec.sensors_of("imu")), base)
            out.append((self.pubs["imu"], cv.imu(obs["imu_orientation"], obs["imu_angular_velocity"],
                                                 obs["imu_linear_acceleration"], t, imu_frame)))
        if "odom_pose" in obs:
            out.append((self.pubs["odom"], cv.odometry(obs["odom_pose"], obs["odom_twist"], t, "odom", base)))
        if self._video is not None and not self.log.episodes:
            self._video.add(self.sim.render(self.cfg.video_camera)[0])
        with self._sent_lock:
            self._sent_at[cv.to_ns(st)] = time.monotonic()
            if len(self._sent_at) > 100:  # ticks nobody answered
                self._sent_at.pop(next(iter(self._sent_at)))

        def send():
            for p, m in out:
                p.publish(m)

        if self.timeline is None:
            send()
            return send
        stamp_ns = cv.to_ns(st)
        for p, m in out:  # the first send, timed per camera frame (before publish: with shared
            if id(m) in rendered:  # memory a subscriber may run before publish() returns)
                topic, render_s = rendered[id(m)]
                self.timeline.mark("publish", topic, stamp_ns, value_s=render_s)
            p.publish(m)
        return send

    def _diagnostics(self, t: float, r: EpisodeResult) -> None:
        now = time.monotonic()
        if now - self._window_start < self.cfg.diagnostics_period_s:
            return
        rate = (self.loop.tick - self._window_tick) / (now - self._window_start)
        missed, late = r.missed_commands, r.late_ticks
        values = {"tick_rate_hz": f"{rate:.1f}", "sim_time_s": f"{t:.2f}", "episode": r.episode,
                  "missed_commands": missed, "late_ticks": late, "safety_holds": r.safety_holds,
                  "rejected_commands": self._rejected, "mode": self.cfg.mode}
        for name, samples in (("tick_jitter", self.loop.lateness), ("round_trip", self._round_trip)):
            if samples:
                lat = latency_summary(list(samples))
                values.update({f"{name}_p50_ms": f"{lat['p50']:.2f}", f"{name}_p99_ms": f"{lat['p99']:.2f}"})
        level = "WARN" if (missed or late) else "OK"
        msg = DiagnosticArray()
        msg.header.stamp = cv.stamp(t)
        msg.status = [cv.diagnostic_status(f"{self.get_name()}: control loop", level,
                                           f"{rate:.1f} ticks/s", values, self.spec.name)]
        self.pubs["diagnostics"].publish(msg)
        self._window_start, self._window_tick = now, self.loop.tick

    def _run(self) -> None:
        try:
            i = 0
            while not self.loop.stop.is_set() and (self.cfg.episodes == 0 or i < self.cfg.episodes):
                if i == 0:
                    self._wait_for_subscribers(self.cfg.policy_wait_s)
                self._reset_policy(self.cfg.policy_wait_s if i == 0 else 1.0)
                r = self.loop.episode(i, self.cfg.seed + i)
                if self.loop.stop.is_set():
                    break
                self.log.add(r)
                if self._video is not None:
                    self._video.close()
                    self._video = None
                self.pubs["outcome"].publish(String(data=json.dumps(asdict(r))))
                print(episode_line(r), flush=True)
                self.log.latency = {f"{name}_ms": latency_summary(list(samples)) for name, samples in
                                    (("tick_jitter", self.loop.lateness), ("round_trip", self._round_trip))
                                    if samples}
                if self.cfg.results:
                    self.log.write(self.cfg.results)
                if self.timeline is not None:
                    self.timeline.write(self.cfg.timeline)
                i += 1
            for what, samples in (("realtime tick jitter", self.loop.lateness),
                                  ("command round trip", self._round_trip)):
                if samples:
                    lat = latency_summary(list(samples))
                    print(f"{what} p50 {lat['p50']:.2f} ms p99 {lat['p99']:.2f} ms", flush=True)
            print(f"ticks/s {self.log.summary()['ticks_per_s']:.1f}", flush=True)
            self.exit_code = 0
        except Exception as e:  # noqa: BLE001 - the loop thread must report, not die silently
            self.get_logger().error(f"control loop failed: {type(e).__name__}: {e}")
            print(f"robot_node: error: {e}", file=sys.stderr, flush=True)
            self.exit_code = 1

    def destroy_node(self):
        self.loop.stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._client_exec.shutdown(timeout_sec=1.0)
        self._client_node.destroy_node()
        self.sim.disconnect()
        return super().destroy_node()


def requested_backend(argv: list[str]) -> str:
    """The ``backend`` parameter given on the command line (``-p backend:=X``), or ""."""
    for i, a in enumerate(argv):
        text = a if a.startswith("backend:=") else (argv[i + 1] if a in ("-p", "--param") and i + 1 < len(argv)
                                                     else "")
        if text.startswith("backend:="):
            return text.split(":=", 1)[1].strip().strip("'\"")
    return ""


def main(argv: list[str] | None = None) -> None:
    """``backend:=hardware`` hosts a real robot (``hardware_node``) under the same node name and
    topics, so one launch file serves the sim and the robot."""
    if requested_backend(sys.argv if argv is None else argv) == "hardware":
        from rosmind_ros.hardware_node import HardwareNode

        sys.exit(run_node(HardwareNode, argv))
    sys.exit(run_node(RobotNode, argv))


if __name__ == "__main__":
    main()

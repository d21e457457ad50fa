"""safety_node: the only path from policies and teleop to the robot (core: ``rosmind.safety``).

Subscribes ``safety/joint_trajectory`` (action chunks, point i at ``i * control_period``, or
any JointTrajectory with strictly increasing ``time_from_start``, as MoveIt, rqt or ``ros2
topic pub`` send a joint_trajectory_controller: resampled onto the control grid by the core),
``safety/commands`` (Float64MultiArray, spec joint order), ``joint_states`` (measured) and
``estop`` (Bool; true latches), and for a quadruped ``imu``: a trunk tilted past
``max_tilt_deg`` (or a NaN orientation) latches the e-stop and folds the legs into the spec's
crouch pose at ``crouch_speed`` (``rosmind.fall_guard``). Serves ``safety/reset`` (Trigger). Publishes validated chunks
on ``joint_trajectory`` (stamp preserved), validated commands on
``forward_position_controller/commands``, watchdog / e-stop / reset setpoints as one-point
``joint_trajectory`` stamped with the current ROS time, and ``/diagnostics`` at
``diagnostics_rate_hz`` (wall clock) and right after an intervention or a state change.
Parameters: the fields of ``SafetyConfig``. The watchdog runs on ROS time every control
period, so with ``use_sim_time`` it counts sim time in lockstep.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from rosmind.fall_guard import FallGuard, FallGuardConfig
from rosmind.safety import SafetyConfig, SafetySupervisor
from rosmind.spec import RobotSpec, load_spec
from rosmind.timeline import Timeline
from rosmind_ros import conversions as cv
from rosmind_ros.params import declare_from_dataclass, run_node

_IMMEDIATE_MIN_S = 0.1  # at most 10 immediate diagnostics per second (wall clock)


def _make_fk(spec: RobotSpec) -> tuple[Callable[[np.ndarray], np.ndarray] | None, Callable[[], None]]:
    """Forward kinematics of ``spec.ee_link`` in the base frame, from the sim's kinematics
    model when one exists for this robot; ``(None, noop)`` otherwise."""
    if spec.name != "panda":
        return None, lambda: None
    from rosmind.sim.experts import PandaKinematics  # pybullet: only when it is needed

    kin = PandaKinematics(spec)
    return (lambda q: kin.fk(np.asarray(q)[:7])), kin.close


class SafetyNode(Node):
    def __init__(self):
        super().__init__("safety_node")
        self.cfg = cfg = declare_from_dataclass(self, SafetyConfig)
        self.spec = spec = load_spec(cfg.robot)
        log = self.get_logger()
        fk, self._close_fk = None, lambda: None
        if cfg.enforce_workspace and spec.workspace is not None:
            fk, self._close_fk = _make_fk(spec)
            if fk is None:
                log.warning(f"workspace box of robot {spec.name!r} NOT enforced: no kinematics "
                            "model for it (joint limits still are)")
        self.core = SafetySupervisor(spec, cfg, self._now, log.warning, fk=fk, info=log.info)
        self.pub_traj = self.create_publisher(JointTrajectory, "joint_trajectory", 10)
        self.pub_cmd = self.create_publisher(Float64MultiArray,
                                             "forward_position_controller/commands", 10)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # joint_states first: the executor serves ready subscriptions in creation order, so a
        # command and the measurement of its tick arriving together are checked measured-first.
        self.create_subscription(JointState, "joint_states", self._on_joint_states, 10)
        self.create_subscription(JointTrajectory, "safety/joint_trajectory", self._on_trajectory, 10)
        self.create_subscription(Float64MultiArray, "safety/commands", self._on_command, 10)
        self.create_subscription(Bool, "estop", self._on_estop, 10)
        self.create_service(Trigger, "safety/reset", self._on_reset)
        self.guard: FallGuard | None = None
        if spec.kind == "quadruped":
            self.guard = FallGuard(spec, declare_from_dataclass(self, FallGuardConfig))
            self._crouch_at: np.ndarray | None = None
            self.create_subscription(Imu, "imu", self._on_imu, 10)
        self.create_timer(spec.control_period, self._on_tick)  # ROS time: sim time if asked
        self.create_timer(1.0 / cfg.diagnostics_rate_hz, self._publish_diagnostics,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._seen = (self.core.interventions_total, self.core.state)
        self._last_diag = 0.0
        self._timeline_path = self.declare_parameter("timeline", "").value  # rosmind.timeline JSON at exit
        self.timeline = Timeline() if self._timeline_path else None
        log.info(f"guarding robot {spec.name!r} ({spec.dof} joints, {spec.control_rate_hz:g} Hz, "
                 f"mode={cfg.mode}, workspace {'on' if self.core.workspace_active else 'off'})")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_joint_states(self, msg: JointState) -> None:
        try:
            self.core.update_measured(cv.joint_state_to_numpy(msg, self.spec.joint_names)["joint_pos"])
        except (KeyError, ValueError) as e:
            self.get_logger().error(f"joint_states ignored: {e}", throttle_duration_sec=5.0)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            times, pts, vel, has_vel = cv.joint_trajectory_waypoints(msg)
        except (KeyError, ValueError) as e:
            self.core.reject("malformed_rejected", f"safety/joint_trajectory: {e}")
            out = None
        else:
            stamp = cv.to_sec(msg.header.stamp)  # 0: unstamped, the core takes it as now
            t0 = time.perf_counter()
            out = self.core.filter_timed_trajectory(msg.joint_names, times, pts, stamp, vel, has_vel)
            if self.timeline is not None:
                self.timeline.mark("filter", "safety/joint_trajectory", cv.to_ns(msg.header.stamp),
                                   value_s=time.perf_counter() - t0)
            if out is not None:
                sent = self._trajectory(out, stamp or self._now(), msg.header.frame_id)
                if stamp > 0:
                    sent.header.stamp = msg.header.stamp  # bit-exact: robot_node matches ticks
                self.pub_traj.publish(sent)
        if out is None and (msg.header.stamp.sec or msg.header.stamp.nanosec):
            # A refused stamped chunk is answered by an empty trajectory of the same stamp:
            # "hold" in the joint_trajectory_controller convention, so a lockstep robot
            # steps on at once instead of waiting to tell refusal from a slow policy.
            hold = JointTrajectory(joint_names=list(self.spec.joint_names))
            hold.header.stamp = msg.header.stamp
            self.pub_traj.publish(hold)
        self._after_event()

    def _on_command(self, msg: Float64MultiArray) -> None:
        out = self.core.filter_command(cv.float_array_to_numpy(msg))
        if out is not None:
            self.pub_cmd.publish(cv.float_array(out))
        self._after_event()

    def _on_estop(self, msg: Bool) -> None:
        if msg.data:
            self._send_setpoint(self.core.estop())
        self._after_event()

    def _on_imu(self, msg: Imu) -> None:
        o = msg.orientation
        if self.guard.update_imu((o.x, o.y, o.z, o.w)):
            self.core.estop()
            self.core.reject("fall_detected", f"imu: trunk tilted {self.guard.last_tilt:.0f} deg (limit "
                             f"{self.guard.config.max_tilt_deg:g}): e-stop latched, folding into the crouch pose")
            self._crouch_at = self.core.measured.copy() if self.core.measured is not None else None
            self._after_event(force=True)

    def _on_reset(self, _req, resp):
        if self.guard is not None:
            self.guard.reset()
        setpoint, resp.message = self.core.reset()
        resp.success = setpoint is not None
        self._send_setpoint(setpoint)
        self._after_event(force=True)
        return resp

    def _on_tick(self) -> None:
        if self.guard is not None and self.guard.fallen and self._crouch_at is not None:
            self._crouch_at = self.guard.setpoint(self._crouch_at)
            self._send_setpoint(self._crouch_at)
            return
        self._send_setpoint(self.core.tick())
        self._after_event()

    def _send_setpoint(self, q: np.ndarray | None) -> None:
        if q is not None:
            self.pub_traj.publish(self._trajectory(q[None], self._now(), ""))

    def _trajectory(self, pts: np.ndarray, t: float, frame_id: str) -> JointTrajectory:
        return cv.joint_trajectory(self.spec.joint_names, pts, t, self.core.dt, frame_id)

    def _after_event(self, force: bool = False) -> None:
        seen = (self.core.interventions_total, self.core.state)
        if (force or seen != self._seen) and time.monotonic() - self._last_diag >= _IMMEDIATE_MIN_S:
            self._publish_diagnostics()

    def _publish_diagnostics(self) -> None:
        self._seen = (self.core.interventions_total, self.core.state)
        self._last_diag = time.monotonic()
        st = self.core.status()
        if self.guard is not None:
            st["values"] |= {"fallen": str(self.guard.fallen).lower(), "tilt_deg": f"{self.guard.last_tilt:.1f}",
                             "falls": self.guard.trips}
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [cv.diagnostic_status(f"safety_node: {self.spec.name}", st["level"],
                                           st["message"], st["values"], self.spec.name)]
        self.pub_diag.publish(msg)

    def destroy_node(self):
        if self.timeline is not None:
            self.timeline.write(self._timeline_path)
        self._close_fk()
        return super().destroy_node()


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_node(SafetyNode, argv))


if __name__ == "__main__":
    main()

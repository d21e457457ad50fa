"""safety_node as a real process over DDS, against a test-side node that plays the robot.

Every message that reaches the robot topics is checked: finite, inside the spec's limits,
no jump. Rejections and clamps must show up in /diagnostics; the watchdog must hold then
stop; the e-stop must latch until safety/reset. Wall time (use_sim_time false).
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from procs import stop_process, stopped_cleanly
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from rosmind.spec import load_spec
from rosmind_ros import conversions as cv

pytestmark = pytest.mark.ros

SPEC = load_spec("panda")
NAMES = SPEC.joint_names
LOWER, UPPER = np.array(SPEC.limits("lower")), np.array(SPEC.limits("upper"))
DT = SPEC.control_period
ARM = np.r_[np.ones(7), 0.0]
# Measured pose next to joint7's upper limit (2.8973) and the finger's (0.04), so an
# out-of-limit command is clamped rather than rejected as a jump; joint7 turns the hand about
# its own axis, so the end effector stays inside the workspace box.
QB = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 2.85, 0.039])



class FakeRobot:
    """Publishes joint_states at 20 Hz, records what safety_node sends to the robot."""

    def __init__(self):
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("fake_robot", context=self.ctx)
        self.exec = SingleThreadedExecutor(context=self.ctx)
        self.exec.add_node(self.node)
        self.measured = QB.copy()
        self.publishing_states = False
        self.traj: list[tuple[float, np.ndarray, float]] = []  # (stamp, points [N, D], wall)
        self.cmds: list[np.ndarray] = []
        self.refused: list[float] = []  # stamps of empty "hold" answers to refused chunks
        self.diag: list[dict] = []
        n = self.node
        n.create_subscription(JointTrajectory, "joint_trajectory", self._on_traj, 10)
        n.create_subscription(Float64MultiArray, "forward_position_controller/commands",
                              lambda m: self.cmds.append(cv.float_array_to_numpy(m)), 10)
        n.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.pub_traj = n.create_publisher(JointTrajectory, "safety/joint_trajectory", 10)
        self.pub_cmd = n.create_publisher(Float64MultiArray, "safety/commands", 10)
        self.pub_estop = n.create_publisher(Bool, "estop", 10)
        self.pub_js = n.create_publisher(JointState, "joint_states", 10)
        self.reset_client = n.create_client(Trigger, "safety/reset")
        n.create_timer(DT, self._publish_state)

    def _on_traj(self, msg: JointTrajectory) -> None:
        if not msg.points:
            self.refused.append(cv.to_sec(msg.header.stamp))
            return
        pts, _ = cv.joint_trajectory_to_numpy(msg, NAMES)
        self.traj.append((cv.to_sec(msg.header.stamp), pts, time.monotonic()))

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name == "safety_node: panda":
                self.diag.append(dict(cv.diagnostic_values(st), level=int.from_bytes(st.level)))

    def _publish_state(self) -> None:
        if self.publishing_states:
            self.pub_js.publish(cv.joint_state(NAMES, self.measured, t=time.time()))

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.exec.spin_once(timeout_sec=0.01)

    def spin_until(self, pred, timeout: float, what: str):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.exec.spin_once(timeout_sec=0.01)
            if pred():
                return
        pytest.fail(f"timed out after {timeout} s waiting for {what}; last diagnostics: "
                    f"{self.diag[-1] if self.diag else None}")

    def last_diag(self) -> dict:
        return self.diag[-1] if self.diag else {}

    def command(self, q, spin: bool = True) -> None:
        self.pub_cmd.publish(cv.float_array(q))
        if spin:
            self.spin(DT)

    def chunk(self, pts, names=NAMES, spin: bool = True) -> None:
        self.pub_traj.publish(cv.joint_trajectory(names, pts, time.time(), DT))
        if spin:
            self.spin(DT)

    def close(self) -> None:
        self.node.destroy_node()
        self.exec.shutdown()
        rclpy.try_shutdown(context=self.ctx)


@pytest.fixture
def graph(ros_env):
    proc = subprocess.Popen(
        [sys.executable, "-m", "rosmind_ros.safety_node", "--ros-args", "-p", "robot:=panda",
         "-p", "use_sim_time:=false", "-p", "diagnostics_rate_hz:=5.0",
         # A loaded CI machine may stall this test process for a few ticks.
         "-p", "watchdog_hold_periods:=6", "-p", "watchdog_stop_timeout_s:=1.0"],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    robot = None
    try:
        robot = FakeRobot()
        yield robot, proc
    finally:
        if robot is not None:
            robot.close()
        stop_process(proc)


def _check_safe(robot: FakeRobot) -> None:
    """Every setpoint that reached the robot: finite, in limits, near the measured pose."""
    sent = [pts for _, pts, _ in robot.traj] + [q[None] for q in robot.cmds]
    assert sent, "nothing reached the robot"
    for pts in sent:
        assert pts.shape[1] == len(NAMES)
        assert np.all(np.isfinite(pts)), pts
        assert np.all(pts >= LOWER - 1e-9) and np.all(pts <= UPPER + 1e-9), pts
        assert np.max(np.abs(pts - QB)) < 0.3, f"a jump reached the robot: {pts}"


def test_safety_node_filters_watchdogs_and_estops(graph):
    robot, proc = graph
    robot.spin_until(lambda: robot.diag, 20.0, "safety_node diagnostics")

    # Nothing goes out before joint_states (repeat until one has surely been received).
    while int(robot.last_diag().get("no_joint_states", 0)) == 0:
        robot.command(QB)
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert len(robot.diag) < 100, "safety_node never counted the early command"
    assert not robot.traj and not robot.cmds

    robot.publishing_states = True
    robot.spin_until(lambda: robot.last_diag().get("joint_states_received") == "True", 5.0,
                     "joint_states to reach safety_node")

    valid = 0
    for k in range(24):
        wiggle = QB.copy()
        wiggle[:6] += 0.02 * np.sin(2 * np.pi * k * DT)
        # Invalid messages go out between two valid ones, without a pause.
        if k % 6 == 0:
            robot.command(np.full(8, np.nan), spin=False)
        if k == 7:
            chunk = np.tile(wiggle, (4, 1))
            chunk[2, 3] = np.inf
            robot.chunk(chunk, spin=False)
        if k == 9:
            out = wiggle.copy()
            out[6], out[7] = 3.4, 0.08  # beyond joint7's and the finger's upper limits
            robot.command(out)
            valid += 1  # passes, clamped
        if k == 11:
            jump = wiggle.copy()
            jump[2] += 0.8
            robot.command(jump, spin=False)
        if k == 13:
            robot.command(wiggle[:7], spin=False)  # wrong joint count
            robot.chunk(np.tile(wiggle, (2, 1)), names=NAMES[:-1] + ["panda_finger_joint2"],
                        spin=False)
        if k == 15:
            chunk = np.tile(wiggle, (5, 1))
            robot.chunk(chunk[:, ::-1], names=NAMES[::-1])  # a permutation: reordered
            valid += 1
            continue
        robot.command(wiggle)
        valid += 1
    last_cmd = wiggle

    def passed():  # one-point trajectories are watchdog setpoints, not forwarded commands
        return len(robot.cmds) + sum(len(pts) > 1 for _, pts, _ in robot.traj)

    robot.spin_until(lambda: passed() >= valid, 5.0, "valid commands")
    robot.spin(0.1)
    assert passed() == valid
    np.testing.assert_allclose(robot.cmds[-1], last_cmd, atol=1e-9)  # valid ones pass unchanged
    assert any(abs(c[6] - QB[6]) > 0.01 for c in robot.cmds)  # the clamped one moved joint7
    _check_safe(robot)

    def counted(**at_least):
        d = robot.last_diag()
        return all(int(d.get(k, 0)) >= v for k, v in at_least.items())

    robot.spin_until(lambda: counted(nan_rejected=5, position_clamped=1, jump_rejected=1,
                                     joint_names_rejected=2), 3.0, "the interventions in diagnostics")
    assert "ARMED" == robot.last_diag()["state"]
    # The refused stamped chunks (an inf point, a wrong joint name) were answered with an empty
    # trajectory of their own stamp, so a lockstep robot can step on at once.
    robot.spin_until(lambda: len(robot.refused) >= 2, 3.0, "empty answers to refused chunks")
    assert all(t > 0 for t in robot.refused)

    # Stop commanding: the watchdog holds the last safe setpoint, then stops at the measured pose.
    n_traj = len(robot.traj)
    robot.spin_until(lambda: len(robot.traj) > n_traj, 3.0, "the watchdog's hold setpoint")
    _, hold, _ = robot.traj[-1]
    assert hold.shape == (1, 8)
    np.testing.assert_allclose(hold[0], robot.cmds[-1], atol=1e-9)
    robot.measured = QB + ARM * 0.004  # where the robot really settled
    robot.spin_until(lambda: len(robot.traj) > n_traj + 1, 3.0, "the watchdog's stop setpoint")
    _, stop, _ = robot.traj[-1]
    np.testing.assert_allclose(stop[0], robot.measured, atol=1e-9)
    robot.spin_until(lambda: robot.last_diag().get("state") == "STOPPED", 3.0, "state STOPPED")
    states = [d["state"] for d in robot.diag]
    assert "HOLDING" in states and states.index("HOLDING") < len(states) - 1 - states[::-1].index("STOPPED")
    assert int(robot.last_diag()["watchdog_hold"]) == 1 and int(robot.last_diag()["watchdog_stop"]) == 1

    # The e-stop holds the measured pose and latches until safety/reset, which re-arms.
    n_traj, n_cmds = len(robot.traj), len(robot.cmds)
    robot.pub_estop.publish(Bool(data=True))
    robot.spin_until(lambda: len(robot.traj) > n_traj, 3.0, "the e-stop hold setpoint")
    np.testing.assert_allclose(robot.traj[-1][1][0], robot.measured, atol=1e-9)
    robot.spin_until(lambda: robot.last_diag().get("state") == "ESTOP", 3.0, "state ESTOP")
    assert robot.last_diag()["level"] == 2  # ERROR
    for _ in range(5):
        robot.command(robot.measured)
    robot.spin(0.3)
    assert len(robot.cmds) == n_cmds, "a command passed a latched e-stop"
    assert int(robot.last_diag()["estop"]) >= 6
    assert robot.reset_client.wait_for_service(timeout_sec=5.0)
    future = robot.reset_client.call_async(Trigger.Request())
    robot.spin_until(future.done, 5.0, "safety/reset")
    assert future.result().success, future.result().message
    robot.command(robot.measured + ARM * 0.002)
    robot.spin_until(lambda: len(robot.cmds) > n_cmds, 3.0, "a command after reset")
    np.testing.assert_allclose(robot.cmds[-1], robot.measured + ARM * 0.002, atol=1e-9)
    _check_safe(robot)

    code = stop_process(proc)  # SIGINT: clean shutdown
    out = proc.stdout.read()
    assert stopped_cleanly(code, out), out[-3000:]


def test_bad_parameter_exits_2_with_one_clear_line(ros_env):
    proc = subprocess.run([sys.executable, "-m", "rosmind_ros.safety_node", "--ros-args",
                           "-p", "mode:=bogus"], env=ros_env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "'mode'" in proc.stderr and "clamp" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def _waypoints(names, times, rows, velocities=None) -> JointTrajectory:
    """A JointTrajectory as ``ros2 topic pub`` or MoveIt sends one: unstamped, any timing."""
    from builtin_interfaces.msg import Duration
    from trajectory_msgs.msg import JointTrajectoryPoint

    msg = JointTrajectory(joint_names=list(names))
    for i, (t, row) in enumerate(zip(times, rows, strict=True)):
        p = JointTrajectoryPoint(positions=[float(x) for x in row],
                                 time_from_start=Duration(sec=int(t), nanosec=round((t - int(t)) * 1e9)))
        if velocities is not None:
            p.velocities = [float(x) for x in velocities[i]]
        msg.points.append(p)
    return msg


def test_standard_joint_trajectories_are_resampled_onto_the_control_grid(graph):
    robot, proc = graph
    robot.publishing_states = True
    robot.spin_until(lambda: robot.last_diag().get("joint_states_received") == "True", 20.0,
                     "joint_states to reach safety_node")
    goal = QB + np.r_[0.1, -0.1, 0.1, 0.1, 0.0, -0.1, -0.1, -0.01]
    order = [NAMES[i] for i in (3, 0, 7, 5, 1, 6, 2, 4)]
    # One waypoint at 1 s with every joint, names shuffled (`ros2 topic pub`, rqt).
    robot.pub_traj.publish(_waypoints(order, [1.0], [[goal[NAMES.index(n)] for n in order]]))
    robot.spin_until(lambda: robot.traj, 5.0, "the resampled trajectory")
    _, pts, _ = robot.traj[-1]
    assert pts.shape == (21, 8)
    np.testing.assert_allclose(pts[0], QB, atol=1e-9)
    np.testing.assert_allclose(pts[-1], goal, atol=1e-9)
    np.testing.assert_allclose(pts[10], (QB + goal) / 2, atol=1e-9)  # linear, half way at 0.5 s
    # MoveIt-style: three waypoints with velocities, at off-grid times.
    mid = (QB + goal) / 2
    n = len(robot.traj)
    robot.pub_traj.publish(_waypoints(NAMES, [0.33, 0.71, 1.23], [goal, mid, QB],
                                      [np.zeros(8), (QB - goal) / 0.9, np.zeros(8)]))
    robot.spin_until(lambda: len(robot.traj) > n, 5.0, "the cubic trajectory")
    _, pts, _ = robot.traj[-1]
    assert pts.shape == (26, 8)  # ceil(1.23 / 0.05) + 1
    np.testing.assert_allclose(pts[-1], QB, atol=1e-9)
    # A partial joint set: refused, naming the missing joint, nothing sent.
    n = len(robot.traj)
    robot.pub_traj.publish(_waypoints(NAMES[:7], [0.5], [QB[:7]]))
    robot.spin_until(lambda: int(robot.last_diag().get("joint_names_rejected", 0)) >= 1, 5.0,
                     "the partial trajectory's rejection")
    assert "panda_finger_joint1" in robot.last_diag()["last_intervention"]
    robot.spin(0.2)
    assert all(len(p) == 1 for _, p, _ in robot.traj[n:]), "a partial trajectory reached the robot"
    _check_safe(robot)
    code = stop_process(proc)
    assert stopped_cleanly(code, proc.stdout.read())

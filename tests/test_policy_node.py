"""policy_node (scripted expert, lockstep) as a real process, fed by a test-side node that
plays the robot with observations read from a real PyBullet sim: commands carry the tick's
stamp and the spec's joints, stale inputs skip the tick, policy/reset answers."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray, PoseStamped
from procs import stopped_cleanly
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from rosmind.sim.robots import make_sim
from rosmind_ros import conversions as cv

pytestmark = pytest.mark.ros


class FakeRobot:
    def __init__(self, spec):
        self.spec = spec
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = n = rclpy.create_node("fake_robot", context=self.ctx)
        self.exec = SingleThreadedExecutor(context=self.ctx)
        self.exec.add_node(n)
        self.traj: list[JointTrajectory] = []
        self.diag: dict[str, str] = {}
        n.create_subscription(JointTrajectory, "joint_trajectory", self.traj.append, 10)
        n.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.pubs = {"joint_states": n.create_publisher(JointState, "joint_states", 10),
                     "ee_pose": n.create_publisher(PoseStamped, "ee_pose", 10),
                     "object_poses": n.create_publisher(PoseArray, "object_poses", 10),
                     "goal_pose": n.create_publisher(PoseStamped, "goal_pose", 10)}
        self.reset = n.create_client(Trigger, "policy/reset")

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name.endswith(": policy"):
                self.diag = cv.diagnostic_values(st)

    def publish(self, obs: dict, t: float, only_joint_states: bool = False) -> None:
        base = self.spec.base_frame
        if not only_joint_states:
            self.pubs["ee_pose"].publish(cv.pose_stamped(obs["ee_pose"], t, base))
            self.pubs["object_poses"].publish(cv.pose_array(obs["object_poses"], t, base))
            self.pubs["goal_pose"].publish(cv.pose_stamped(obs["goal_pose"], t, base))
        self.pubs["joint_states"].publish(cv.joint_state(self.spec.joint_names, obs["joint_pos"],
                                                         obs["joint_vel"], obs["joint_effort"], t))

    def spin_until(self, cond, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cond():
            self.exec.spin_once(timeout_sec=0.05)
        return cond()

    def close(self) -> None:
        self.exec.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


def test_policy_node_commands_stamps_staleness_and_reset(ros_env):
    sim = make_sim("panda", "pick_place")
    sim.connect()
    obs = sim.reset(3)
    spec, dt = sim.spec, sim.spec.control_period
    proc = subprocess.Popen([sys.executable, "-m", "rosmind_ros.policy_node", "--ros-args",
                             "-p", "policy:=expert", "-p", "mode:=lockstep", "-p", "startup_timeout_s:=60.0",
                             "-p", "diagnostics_period_s:=0.2"],
                            env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    fake = FakeRobot(spec)
    problem = None
    try:
        # Tick 0 until the policy node is up and answers (a late subscriber misses early sends).
        t0 = 10.0
        end = time.monotonic() + 60
        while not fake.traj and time.monotonic() < end and proc.poll() is None:
            fake.publish(obs, t0)
            fake.spin_until(lambda: bool(fake.traj), 0.5)
        if not fake.traj:
            problem = "no joint_trajectory for tick 0"
        else:
            for k in range(1, 4):                                   # complete ticks: one command each
                fake.publish(obs, t0 + k * dt)
                if not fake.spin_until(lambda k=k: len({cv.to_sec(m.header.stamp) for m in fake.traj}) > k, 10):
                    problem = f"no command for tick {k}"
                    break
        if problem is None:
            n_before = len(fake.traj)
            for k in range(4, 7):                                   # only joint_states: stale
                fake.publish(obs, t0 + k * dt, only_joint_states=True)
                fake.spin_until(lambda: False, 0.2)
            fake.spin_until(lambda: int(fake.diag.get("skipped_stale_ticks", 0)) >= 2, 5)
            stale_cmds = len(fake.traj) - n_before
            assert fake.reset.wait_for_service(timeout_sec=5)
            fut = fake.reset.call_async(Trigger.Request())
            fake.exec.spin_until_future_complete(fut, timeout_sec=5)
    finally:
        fake.close()
        sim.disconnect()
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert problem is None, f"{problem}; policy_node output:\n{out}"
    stamps = sorted({round(cv.to_sec(m.header.stamp), 6) for m in fake.traj})
    assert stamps == [round(t0 + k * dt, 6) for k in range(4)]     # one per complete tick, its stamp
    for m in fake.traj:
        assert list(m.joint_names) == spec.joint_names
        pos, times = cv.joint_trajectory_to_numpy(m, spec.joint_names)
        assert 1 <= len(times) <= 8 and np.all(np.isfinite(pos))
        np.testing.assert_allclose(times, np.arange(len(times)) * dt, atol=1e-9)
    assert stale_cmds == 0, "a tick with stale inputs must not be commanded"
    assert int(fake.diag["skipped_stale_ticks"]) >= 2, fake.diag
    assert "ee_pose" in fake.diag["stale_keys"], fake.diag
    assert float(fake.diag["inference_p50_ms"]) > 0
    assert fut.done() and fut.result().success
    assert stopped_cleanly(proc.returncode, out), out


@pytest.mark.parametrize("policy", ["instant"])  # one-row plans: usable only if sent on landing
def test_policy_node_realtime_commands_every_tick_without_blocking(ros_env, policy):
    sim = make_sim("panda", "pick_place")
    sim.connect()
    obs = sim.reset(3)
    spec, dt = sim.spec, sim.spec.control_period
    proc = subprocess.Popen([sys.executable, "-m", "rosmind_ros.policy_node", "--ros-args",
                             "-p", f"policy:={policy}", "-p", "mode:=realtime", "-p", "startup_timeout_s:=60.0"],
                            env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    fake = FakeRobot(spec)
    sent: list[float] = []
    try:
        end = time.monotonic() + 60
        while not fake.traj and time.monotonic() < end and proc.poll() is None:  # until it is up
            sent.append(100.0 + len(sent) * dt)
            fake.publish(obs, sent[-1])
            fake.spin_until(lambda: bool(fake.traj), dt)
        first = len(sent)
        for _ in range(20):                                         # 1 s of ticks at 20 Hz, wall clock
            sent.append(100.0 + len(sent) * dt)
            fake.publish(obs, sent[-1])
            fake.spin_until(lambda: False, dt)
        fake.spin_until(lambda: False, 0.3)
    finally:
        fake.close()
        sim.disconnect()
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    stamps = {round(cv.to_sec(m.header.stamp), 6) for m in fake.traj}
    assert stamps <= {round(t, 6) for t in sent}, "every command carries a published tick's stamp"
    answered = stamps & {round(t, 6) for t in sent[first:]}
    assert len(answered) >= 15, f"{len(answered)} of 20 ticks commanded; output:\n{out}"
    for m in fake.traj:
        _, times = cv.joint_trajectory_to_numpy(m, spec.joint_names)
        assert 1 <= len(times) <= 8
    assert stopped_cleanly(proc.returncode, out), out

"""robot_node (sim, lockstep) as a real process, driven by a test-side node that plays the
policy: tick stamps and /clock, command checks (joint names, lengths), the reset service,
episode outcomes and the results file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from procs import stopped_cleanly
from rclpy.executors import SingleThreadedExecutor
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from rosmind.spec import load_spec
from rosmind_ros import conversions as cv
from rosmind_ros.params import STOP_DEADLINE_S

pytestmark = pytest.mark.ros

SPEC = load_spec("panda")
DT = SPEC.control_period
SEED = 7


class FakePolicy:
    """Answers each joint_states tick; on tick 0 first sends refused commands."""

    def __init__(self):
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = n = rclpy.create_node("fake_policy", context=self.ctx)
        self.exec = SingleThreadedExecutor(context=self.ctx)
        self.exec.add_node(n)
        self.stamps: list[float] = []
        self.clock: list[float] = []
        self.outcomes: list[dict] = []
        self.names: list[str] = []
        self.pending: JointState | None = None  # a tick whose /clock has not arrived yet
        n.create_subscription(JointState, "joint_states", self._on_tick, 10)
        n.create_subscription(Clock, "/clock", self._on_clock, 10)
        n.create_subscription(String, "episode/outcome", lambda m: self.outcomes.append(json.loads(m.data)), 10)
        self.traj = n.create_publisher(JointTrajectory, "joint_trajectory", 10)
        self.cmd = n.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)
        self.reset = n.create_client(Trigger, "reset")

    def _on_clock(self, msg: Clock) -> None:
        self.clock.append(cv.to_sec(msg.clock))
        if self.pending is not None and self._clock_at(cv.to_sec(self.pending.header.stamp)):
            msg, self.pending = self.pending, None
            self._answer(msg)

    def _clock_at(self, t: float) -> bool:
        return bool(self.clock) and abs(self.clock[-1] - t) < 1e-9

    def _on_tick(self, msg: JointState) -> None:
        # Like a sim-time policy, answer a tick only once /clock has reached it. /clock may match
        # after joint_states (discovery is per topic): then the robot's re-send of the
        # unanswered tick, /clock included, brings it.
        if self._clock_at(cv.to_sec(msg.header.stamp)):
            self._answer(msg)
        else:
            self.pending = msg

    def _answer(self, msg: JointState) -> None:
        t = cv.to_sec(msg.header.stamp)
        q = np.asarray(msg.position)
        if self.stamps and abs(t - self.stamps[-1]) < 1e-9:
            # The robot re-sent the tick: our answer met no subscriber yet (discovery).
            self.cmd.publish(cv.float_array(q))
            return
        self.stamps.append(t)
        self.names = list(msg.name)
        if len(self.stamps) == 1:
            bad = cv.joint_trajectory([f"j{i}" for i in range(SPEC.dof)], q[None], t, DT)
            self.traj.publish(bad)                              # wrong names: refused
            self.cmd.publish(cv.float_array(q[:-1]))            # wrong length: refused
            self.cmd.publish(cv.float_array(q))                 # the tick's command
        else:
            self.traj.publish(cv.joint_trajectory(SPEC.joint_names, np.stack([q, q]), t, DT))

    def spin_until(self, cond, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            self.exec.spin_once(timeout_sec=0.05)
        return cond()

    def call_reset(self) -> None:
        assert self.reset.wait_for_service(timeout_sec=10)
        fut = self.reset.call_async(Trigger.Request())
        self.exec.spin_until_future_complete(fut, timeout_sec=5)
        assert fut.done() and fut.result().success

    def close(self) -> None:
        self.exec.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


def test_lockstep_ticks_commands_reset_and_results(ros_env, tmp_path):
    results = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rosmind_ros.robot_node", "--ros-args", "-p", "episodes:=2",
         "-p", f"seed:={SEED}", "-p", "cameras:=false", "-p", "policy_wait_s:=0.0",
         "-p", "lockstep_timeout_s:=20.0", "-p", f"results:={results}"],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    fake = FakePolicy()
    problem = None
    try:
        if not fake.spin_until(lambda: len(fake.stamps) >= 6, 30):
            problem = f"robot_node published {len(fake.stamps)} ticks in 30 s"
        else:
            fake.call_reset()                                   # ends episode 0
            n0 = len(fake.stamps)
            if not (fake.spin_until(lambda: len(fake.outcomes) >= 1, 10)
                    and fake.spin_until(lambda: len(fake.stamps) >= n0 + 3, 10)):
                problem = "no outcome or no new episode after reset"
            else:
                fake.call_reset()                               # ends episode 1: the node exits
                fake.spin_until(lambda: len(fake.outcomes) >= 2 or proc.poll() is not None, 10)
    finally:
        fake.close()
        if problem is not None or proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert problem is None, f"{problem}; robot_node output:\n{out}"
    assert stopped_cleanly(proc.returncode, out), out
    assert fake.names == SPEC.joint_names
    ticks = np.round(np.array(fake.stamps) / DT)
    np.testing.assert_array_equal(np.diff(ticks), 1)            # one tick per step, monotonic across episodes
    assert {round(t / DT) for t in fake.clock} >= set(ticks.astype(int).tolist())
    assert "rejected command: joint_trajectory joint_names" in out, out
    assert "rejected command: forward_position_controller/commands: expected 8" in out, out
    res = json.loads(results.read_text())
    assert [e["seed"] for e in res["episodes"]] == [SEED, SEED + 1]
    assert [e["ended_by"] for e in res["episodes"]] == ["reset", "reset"]
    assert all(e["missed_commands"] == 0 for e in res["episodes"]), res
    assert sum(e["ticks"] for e in res["episodes"]) == len(fake.stamps)
    assert fake.outcomes[0]["seed"] == SEED
    assert f"episode 0 seed {SEED} success False ticks {res['episodes'][0]['ticks']}" in out


def test_sigint_during_the_startup_wait_stops_the_node_at_once(ros_env):
    """The sim thread's startup waits (subscribers, the policy's reset service) watch the stop
    flag: a SIGINT meanwhile ends the process well inside run_node's shutdown deadline."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rosmind_ros.robot_node", "--ros-args", "-p", "cameras:=false",
         "-p", "min_subscribers:=5", "-p", "policy_wait_s:=60.0"],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    watcher = rclpy.create_node("watcher", context=ctx)
    try:
        end = time.monotonic() + 30
        while watcher.count_publishers("joint_states") == 0 and time.monotonic() < end:
            time.sleep(0.1)
        assert watcher.count_publishers("joint_states") == 1, "robot_node did not come up"
        time.sleep(1.0)  # inside the wait for 5 joint_states subscribers (there are none)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=STOP_DEADLINE_S + 10)
    finally:
        watcher.destroy_node()
        rclpy.shutdown(context=ctx)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert stopped_cleanly(proc.returncode, out), out
    assert "shutdown not done" not in out, out

"""hardware_node (robot_node's hardware backend) driving an emulated servo-bus arm over real DDS:
the sim's topics, commands reaching the bus, lifecycle transitions, device faults on
/diagnostics with the node staying up, and a safe stop on Ctrl-C."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from procs import Probe, stop_process, stopped_cleanly, wait_for
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from rosmind.hardware.emulators.servo_bus import ServoBusEmulator
from rosmind.spec import load_spec

pytestmark = pytest.mark.ros


def _emulator(robot: str) -> ServoBusEmulator:
    bus = load_spec(robot).extra["bus"]
    return ServoBusEmulator(bus["protocol"], dict(zip(bus["ids"], bus["models"], strict=True)))


def _start(env, robot, port, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rosmind_ros.hardware_node", "--ros-args", "-p", f"robot:={robot}",
                             "-p", f"port:={port}", "-p", "diagnostics_period_s:=0.2", *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class _Probe(Probe):
    def __init__(self):
        super().__init__("hw_probe")
        self.states: list[JointState] = self.collect(JointState, "joint_states")
        self.diags: list = self.collect(DiagnosticArray, "/diagnostics",
                                        lambda m: [s for s in m.status if "hardware" in s.name])
        self.cmd = self.node.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)
        self.change = self.node.create_client(ChangeState, "robot_node/change_state")

    def wait(self, cond, timeout=30.0, what=""):
        wait_for(cond, timeout, what)

    def values(self, status) -> dict:
        return {kv.key: kv.value for kv in status.values}

    def transition(self, tid: int) -> bool:
        assert self.change.wait_for_service(timeout_sec=20)
        fut = self.change.call_async(ChangeState.Request(transition=Transition(id=tid)))
        self.wait(fut.done, what="change_state")
        return fut.result().success



@pytest.fixture
def probe(ros_env):
    p = _Probe()
    yield p
    p.close()


def test_commands_reach_the_bus_and_a_fault_keeps_the_node_up(ros_env, probe):
    spec = load_spec("so100")
    with _emulator("so100") as emu:
        proc = _start(ros_env, "so100", emu.port)
        try:
            probe.wait(lambda: len(probe.states) > 5, what="joint_states")
            msg = probe.states[-1]
            assert list(msg.name) == list(spec.joint_names) and msg.header.stamp.sec > 0
            assert all(emu.servo(i).torque for i in range(1, 7))  # activated: torque on, no jump
            target = [0.2, -0.1, 0.3, 0.0, 0.1, 0.4]
            probe.wait(lambda: probe.cmd.get_subscription_count() > 0, what="command subscriber")
            probe.cmd.publish(Float64MultiArray(data=target))
            probe.wait(lambda: np.allclose(probe.states[-1].position, target, atol=0.01), what="arm at target")
            # NaN: rejected by the node, never on the bus
            goals = [emu.servo(i).goal for i in range(1, 7)]
            probe.cmd.publish(Float64MultiArray(data=[0.0, float("nan"), 0, 0, 0, 0]))
            probe.wait(lambda: probe.diags and int(probe.values(probe.diags[-1])["rejected_commands"]) >= 1,
                       what="rejection on diagnostics")
            assert [emu.servo(i).goal for i in range(1, 7)] == goals
            # A servo stops answering: ERROR naming it, no command sent, node up
            emu.silence(4)
            probe.wait(lambda: probe.diags and int.from_bytes(probe.diags[-1].level) == 2 and "[4]" in probe.diags[-1].message,
                       what="ERROR naming servo 4")
            n = len(probe.states)
            probe.cmd.publish(Float64MultiArray(data=[0.0] * 6))
            time.sleep(0.5)
            assert len(probe.states) == n and proc.poll() is None
            assert [emu.servo(i).goal for i in (1, 2, 3, 5, 6)] == [goals[i - 1] for i in (1, 2, 3, 5, 6)]
            # It answers again: OK, holding (the command sent during the fault is dropped)
            emu.silence(4, False)
            probe.wait(lambda: int.from_bytes(probe.diags[-1].level) == 0 and len(probe.states) > n + 5, what="recovery")
            assert int(probe.values(probe.diags[-1])["faults"]) == 1
            np.testing.assert_allclose(probe.states[-1].position, target, atol=0.01)
        finally:
            code = stop_process(proc)
            _, err = proc.communicate()
        assert stopped_cleanly(code, err), err[-3000:]
        emu.settle()
        assert not any(emu.servo(i).torque for i in range(1, 7))  # Ctrl-C: safe stop (torque off)


def test_lifecycle_transitions_drive_the_device(ros_env, probe):
    with _emulator("koch") as emu:
        proc = _start(ros_env, "koch", emu.port, "-p", "autostart:=false")
        try:
            assert probe.transition(Transition.TRANSITION_CONFIGURE)
            time.sleep(0.5)
            assert not probe.states and not any(emu.servo(i).torque for i in range(1, 7))  # inactive
            assert probe.transition(Transition.TRANSITION_ACTIVATE)
            probe.wait(lambda: len(probe.states) > 3, what="joint_states once active")
            emu.settle()
            assert all(emu.servo(i).torque for i in range(1, 7))
            assert probe.transition(Transition.TRANSITION_DEACTIVATE)
            emu.settle()
            assert not any(emu.servo(i).torque for i in range(1, 7))
            emu.silence(2)  # configure checks every servo: a missing one fails the transition
            assert probe.transition(Transition.TRANSITION_CLEANUP)
            assert not probe.transition(Transition.TRANSITION_CONFIGURE)
            probe.wait(lambda: probe.diags and "servo 2" in probe.diags[-1].message, what="servo 2 named")
            assert proc.poll() is None
        finally:
            stop_process(proc)
            proc.communicate()


def test_absent_device_exits_with_a_message(ros_env, tmp_path):
    proc = _start(ros_env, "so100", str(tmp_path / "ttyACM9"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "ttyACM9" in err and "cannot open the servo bus" in err


def test_leader_follower_graph_moves_the_follower_through_safety(ros_env, repo, probe, tmp_path):
    """launch/hw_leader_follower.launch.yaml on two emulated SO-100 buses: the leader moved by
    hand moves the follower (hardware_node <- safety_node <- teleop_node); a leader that stops
    answering releases the deadman and the follower holds."""
    with _emulator("so100") as follower, _emulator("so100") as leader:
        proc = subprocess.Popen([sys.executable, "-m", "rosmind.cli", "launch",
                                 str(repo / "launch" / "hw_leader_follower.launch.yaml"), f"port:={follower.port}",
                                 f"leader_port:={leader.port}", f"out_dir:={tmp_path / 'episodes'}"],
                                env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            probe.wait(lambda: len(probe.states) > 10, timeout=60, what="follower joint_states")
            leader.move_by_hand(2, 2048 + 400)  # shoulder_lift +0.614 rad
            leader.move_by_hand(5, 2048 - 300)  # wrist_roll -0.460 rad
            want = np.zeros(6)
            want[1], want[4] = 400 * 2 * np.pi / 4096, -300 * 2 * np.pi / 4096
            probe.wait(lambda: np.allclose(probe.states[-1].position, want, atol=0.02), timeout=30,
                       what=f"follower at the leader's pose {want}")
            for i in range(1, 7):
                leader.silence(i)
            time.sleep(1.0)
            goals = [follower.servo(i).goal for i in range(1, 7)]
            leader.move_by_hand(2, 2048)
            time.sleep(1.5)
            assert [follower.servo(i).goal for i in range(1, 7)] == goals  # holds: nothing follows
            assert proc.poll() is None
        finally:
            stop_process(proc, group=True)
            out, _ = proc.communicate()
        assert "deadman_released" in out or "device_lost" in out, out[-3000:]

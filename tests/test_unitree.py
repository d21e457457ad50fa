"""Unitree Go2 low level through unitree-sdk2 (CycloneDDS, rt/lowstate + rt/lowcmd), against an
emulator process that speaks the same DDS topics, IDL types and CRC over rosmind's MuJoCo Go2."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from unittest import mock

import numpy as np
import pytest

from rosmind.ros_env import claim_domain

pytestmark = pytest.mark.ros  # DDS processes: one claimed domain each


@pytest.fixture
def dds_domain():
    did, lock = claim_domain()  # a domain no other test uses (CycloneDDS here, not ROS)
    yield did
    lock.close()


@pytest.fixture
def emulator(dds_domain):
    proc = subprocess.Popen([sys.executable, "-m", "rosmind.hardware.emulators.unitree", "--interface", "lo",
                             "--domain", str(dds_domain), "--hang"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    yield proc
    if proc.poll() is None:
        proc.terminate()
    proc.communicate(timeout=20)


@pytest.mark.unit
def test_crc_and_layout_match_the_sdks_own():
    from rosmind.hardware.quadrupeds.unitree import (
        LOWCMD_FORMAT,
        LOWSTATE_FORMAT,
        init_lowcmd,
        lowcmd_crc,
        lowstate_crc,
        sdk_modules,
    )

    sdk = sdk_modules()
    assert struct.calcsize(LOWCMD_FORMAT) == 812 and struct.calcsize(LOWSTATE_FORMAT) == 1180
    from unitree_sdk2py.utils import crc as crcmod

    with mock.patch("platform.system", return_value="Darwin"):  # its pure-Python path (the wheel lacks the .so)
        ref = crcmod.CRC()
    rng = np.random.default_rng(0)
    for _ in range(3):
        cmd = init_lowcmd(sdk)
        for m in cmd.motor_cmd[:12]:
            m.q, m.kp, m.kd = float(rng.uniform(-2, 2)), 20.0, 0.5
        st = sdk.new_lowstate()
        st.imu_state.quaternion = [float(v) for v in rng.normal(size=4)]
        st.motor_state[5].q, st.tick = -1.25, int(rng.integers(1 << 31))
        assert lowcmd_crc(cmd) == ref.Crc(cmd) and lowstate_crc(st) == ref.Crc(st)
    assert (cmd.head, cmd.level_flag, cmd.motor_cmd[0].mode) == ([0xFE, 0xEF], 0xFF, 0x01)


def test_driver_holds_moves_within_its_power_limit_and_damps(emulator, dds_domain):
    from rosmind.hardware.drivers import make_hardware

    go2 = make_hardware("go2", interface="lo", domain=dds_domain)
    go2.connect()
    try:
        q0 = go2.read()["joint_pos"]
        go2.enable()
        time.sleep(0.3)
        np.testing.assert_allclose(go2.read()["joint_pos"], q0, atol=0.05)  # enabling holds in place
        target = q0.copy()
        target[1] += 1.0  # asked for 1 rad: the driver keeps the target within 0.3 rad of the measured joint
        sent = go2.write(target)
        assert sent[1] == pytest.approx(q0[1] + 0.3, abs=0.02)
        end = time.monotonic() + 5
        while time.monotonic() < end and abs(go2.read()["joint_pos"][1] - target[1]) > 0.05:
            go2.write(target)
            time.sleep(0.02)
        assert abs(go2.read()["joint_pos"][1] - target[1]) < 0.05  # gets there, 0.3 rad at a time
        with pytest.raises(Exception, match="non-finite"):
            go2.write(np.full(12, np.nan))
        go2.disable()
        with pytest.raises(Exception, match="write while 'damp'"):
            go2.write(target)
        assert go2.bad_crc == 0
    finally:
        go2.disconnect()


def test_no_robot_is_a_clear_error(dds_domain):
    # Its own process: the SDK joins one DDS domain per process.
    code = ("from rosmind.hardware.drivers import make_hardware\n"
            f"go2 = make_hardware('go2', interface='lo', domain={dds_domain}, connect_timeout_s=1.0)\n"
            "go2.connect()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "HardwareError" in r.stderr
    assert "no rt/lowstate within 1 s" in r.stderr and "Ethernet cable" in r.stderr


def test_hardware_node_runs_the_go2_and_reports_a_lost_robot(emulator, dds_domain, ros_env):
    from diagnostic_msgs.msg import DiagnosticArray
    from procs import Probe, stop_process, stopped_cleanly
    from sensor_msgs.msg import Imu, JointState
    from std_msgs.msg import Float64MultiArray

    proc = subprocess.Popen([sys.executable, "-m", "rosmind_ros.hardware_node", "--ros-args", "-p", "robot:=go2",
                             "-p", "interface:=lo", "-p", f"domain:={dds_domain}", "-p", "diagnostics_period_s:=0.2"],
                            env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    probe = Probe("go2_probe")
    wait = probe.wait
    states, imus = probe.collect(JointState, "joint_states"), probe.collect(Imu, "imu")
    diags = probe.collect(DiagnosticArray, "/diagnostics", lambda m: [s for s in m.status if "hardware" in s.name])
    cmd = probe.node.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)

    try:
        wait(lambda: len(states) > 10 and imus, 60, "joint_states and imu from the Go2")
        assert imus[-1].header.frame_id and abs(imus[-1].orientation.w) > 0.99  # hung level
        q0 = np.array(states[-1].position)
        target = q0.copy()
        target[4] += 0.2  # FL thigh
        wait(lambda: cmd.get_subscription_count() > 0, 20, "command subscriber")
        end = time.monotonic() + 10
        while time.monotonic() < end and abs(states[-1].position[4] - target[4]) > 0.03:
            cmd.publish(Float64MultiArray(data=target.tolist()))
            time.sleep(0.05)
        assert abs(states[-1].position[4] - target[4]) < 0.03
        emulator.terminate()  # the robot is gone
        wait(lambda: diags and int.from_bytes(diags[-1].level) == 2 and "rt/lowstate" in diags[-1].message, 20,
             "ERROR naming rt/lowstate")
        assert proc.poll() is None
    finally:
        probe.close()
        code = stop_process(proc)
        _, err = proc.communicate()
    assert stopped_cleanly(code, err), err[-2000:]

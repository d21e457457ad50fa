"""Servo-bus arms (SO-100 on Feetech STS, Koch on Dynamixel 2.0) through the vendors' SDKs,
against the pseudo-terminal bus emulator that speaks their packet formats."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from rosmind.errors import HardwareError, SpecError
from rosmind.hardware.arms.servo_bus import ServoArm, default_calibration, load_calibration
from rosmind.hardware.emulators.servo_bus import (
    ServoBusEmulator,
    dynamixel_crc,
    dynamixel_packet,
    feetech_packet,
    stuff,
    unstuff,
)
from rosmind.spec import load_spec

pytestmark = pytest.mark.unit

ARMS = {"so100": "feetech", "koch": "dynamixel"}


def emulator_for(robot: str, **kw) -> ServoBusEmulator:
    bus = load_spec(robot).extra["bus"]
    return ServoBusEmulator(bus["protocol"], dict(zip(bus["ids"], bus["models"], strict=True)), **kw)


@pytest.fixture(params=sorted(ARMS))
def rig(request):
    spec = load_spec(request.param)
    with emulator_for(request.param) as emu:
        arm = ServoArm(spec, default_calibration(spec), emu.port)
        yield spec, emu, arm
        arm.disconnect()


def test_packet_formats_match_the_published_examples():
    # Feetech / protocol 1.0 manual: read 2 bytes at 0x38 from id 1 -> FF FF 01 04 02 38 02 BE
    assert feetech_packet(1, 0x02, bytes([0x38, 0x02])) == bytes.fromhex("FFFF0104023802BE")
    # ROBOTIS e-Manual, protocol 2.0 ping of id 1: FF FF FD 00 01 03 00 01 19 4E
    assert dynamixel_packet(1, 0x01) == bytes.fromhex("FFFFFD0001030001194E")
    assert dynamixel_crc(bytes.fromhex("FFFFFD0001030001")) == 0x4E19
    raw = bytes([0xFF, 0xFF, 0xFD, 0x01])
    assert stuff(raw) == bytes([0xFF, 0xFF, 0xFD, 0xFD, 0x01]) and unstuff(stuff(raw)) == raw


def test_connect_read_write_move_the_emulated_servos(rig):
    spec, emu, arm = rig
    arm.connect()
    q0 = arm.read()["joint_pos"]
    np.testing.assert_allclose(q0, 0.0, atol=1e-9)  # every servo at mid-range = the default zero
    with pytest.raises(HardwareError, match="before enable"):
        arm.write(np.zeros(spec.dof))
    arm.enable()
    emu.settle()  # sync writes get no reply: let the emulator take them
    assert all(emu.servo(i).torque for i in arm.ids)
    target = np.array([0.3, -0.2, 0.1, 0.0, -0.4, 0.5])
    sent = arm.write(target)
    np.testing.assert_allclose(sent, target, atol=2 * math.pi / 4096)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not np.allclose(arm.read()["joint_pos"], target, atol=0.01):
        time.sleep(0.02)
    np.testing.assert_allclose(arm.read()["joint_pos"], target, atol=0.01)
    arm.disconnect()
    emu.settle()
    assert not any(emu.servo(i).torque for i in arm.ids)  # torque off on stop


def test_enable_holds_where_the_arm_is(rig):
    spec, emu, arm = rig
    emu.move_by_hand(arm.ids[1], 2048 + 300)
    arm.connect()
    arm.enable()
    emu.settle()
    assert emu.servo(arm.ids[1]).goal == 2048 + 300  # no jump back to an old goal


def test_nan_command_sends_nothing(rig):
    spec, emu, arm = rig
    arm.connect()
    arm.enable()
    emu.settle()  # enable's own sync writes have no reply: let them land first
    before = len(emu.log)
    with pytest.raises(SpecError, match="non-finite"):
        arm.write([0.0, float("nan"), 0, 0, 0, 0])
    emu.settle()
    assert len(emu.log) == before


def test_lost_packet_and_bad_checksum_are_retried(rig):
    spec, emu, arm = rig
    arm.connect()
    emu.drop_next(1)
    assert arm.read()["joint_pos"].shape == (spec.dof,)
    emu.corrupt_next(1)
    assert arm.read()["joint_pos"].shape == (spec.dof,)


def test_a_silent_servo_is_named(rig):
    spec, emu, arm = rig
    arm.connect()
    emu.silence(arm.ids[3])
    with pytest.raises(HardwareError, match=rf"servo\(s\) \[{arm.ids[3]}\] do not answer"):
        arm.read()


def test_absent_servo_wrong_model_and_wrong_port(rig, tmp_path):
    spec, emu, arm = rig
    emu.silence(arm.ids[2])
    with pytest.raises(HardwareError, match=rf"servo {arm.ids[2]} does not answer.*joint {spec.joint_names[2]}"):
        arm.connect()
    emu.silence(arm.ids[2], False)
    cal = default_calibration(spec)
    other = "xl430-w250" if cal.protocol == "dynamixel" else None
    if other:  # Koch: claim an XL430 where an XL330 sits
        cal.joints["wrist_roll"].model = other
        with pytest.raises(HardwareError, match=r"is model number 1200 \(xl330-m288\).*expects xl430-w250"):
            ServoArm(spec, cal, emu.port).connect()
    with pytest.raises(HardwareError, match="cannot open the servo bus"):
        ServoArm(spec, default_calibration(spec), str(tmp_path / "ttyNONE")).connect()


def test_calibration_file_round_trip_and_mismatch(tmp_path):
    so100, koch = load_spec("so100"), load_spec("koch")
    cal = default_calibration(so100)
    cal.joints["elbow_flex"].direction = -1
    path = tmp_path / "so100.json"
    cal.save(path)
    assert load_calibration(path, so100).joints["elbow_flex"].direction == -1
    with pytest.raises(SpecError, match="calibration is for robot 'so100', not 'koch'"):
        load_calibration(path, koch)
    with pytest.raises(SpecError, match="run `rosmind calibrate"):
        load_calibration(tmp_path / "missing.json", so100)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SpecError, match="not a servo calibration file"):
        load_calibration(tmp_path / "bad.json", so100)


def test_calibrate_measures_zero_and_ranges_on_the_arm(tmp_path):
    from rosmind.hardware.arms.calibrate import calibrate

    spec = load_spec("so100")
    with emulator_for("so100") as emu:
        arm = ServoArm(spec, default_calibration(spec), emu.port)
        arm.connect()
        zero = {i: 1500 + 100 * i for i in arm.ids}
        steps = []

        def operator(text):
            steps.append(text)
            if "zero pose" in text:
                for i, z in zero.items():
                    emu.move_by_hand(i, z)
            else:  # sweep each joint +-600 ticks around its zero, slowly enough to be sampled
                for k in range(21):
                    for i, z in zero.items():
                        emu.move_by_hand(i, z + 600 * np.sin(2 * np.pi * k / 20))
                    time.sleep(0.03)

        cal = calibrate(arm, operator, invert=["elbow_flex"])
        arm.disconnect()
        assert len(steps) == 2
        j = cal.joints["elbow_flex"]
        assert (j.zero, j.direction) == (zero[3], -1)
        assert zero[3] - 600 + 20 <= j.min <= zero[3] - 500 and zero[3] + 500 <= j.max <= zero[3] + 600 - 20
        path = tmp_path / "so100.json"
        cal.save(path)
        # The calibrated arm reads 0 rad at the zero pose and the inverted joint turns the other way.
        arm = ServoArm(spec, load_calibration(path, spec), emu.port)
        arm.connect()
        for i, z in zero.items():
            emu.move_by_hand(i, z)
        emu.move_by_hand(3, zero[3] + 100)
        q = arm.read()["joint_pos"]
        np.testing.assert_allclose(q, [0, 0, -100 * 2 * math.pi / 4096, 0, 0, 0], atol=1e-9)
        arm.enable()
        sent = arm.write([0, 0, 3.0, 0, 0, 0])  # beyond the measured range: clipped to it
        assert sent[2] == pytest.approx(-(j.min - zero[3]) * 2 * math.pi / 4096)
        arm.disconnect()

        # A joint nobody moved: an error naming it, nothing saved.
        arm = ServoArm(spec, default_calibration(spec), emu.port)
        arm.connect()
        with pytest.raises(SpecError, match="joint shoulder_pan .* moved only 0 ticks"):
            calibrate(arm, lambda text: None)
        arm.disconnect()


def test_calibrate_command_refuses_to_overwrite(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "so100.json"
    out.write_text("{}")
    r = subprocess.run([sys.executable, "-m", "rosmind.cli", "calibrate", "--robot", "so100", "--port", "/dev/null",
                        "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "exists" in r.stderr and out.read_text() == "{}"


def test_a_servo_error_bit_is_reported(rig):
    spec, emu, arm = rig
    arm.connect()
    emu.set_error(arm.ids[0], 0x20 if arm.cal.protocol == "feetech" else 0x80)  # overload / hardware alert
    with pytest.raises(HardwareError, match=rf"servo {arm.ids[0]}: reading model_number: .*(Overload|error)"):
        arm.bus.read(arm.ids[0], arm.table, "model_number")

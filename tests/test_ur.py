"""Universal Robots through ur-rtde's RTDEReceiveInterface against an RTDE emulator process on
a loopback address (the controller's state side: handshake, output recipes, data packages)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from rosmind.errors import HardwareError
from rosmind.hardware.drivers import make_hardware

pytestmark = pytest.mark.sim  # processes and sockets, no ROS


def _emulator(host: str, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "rosmind.hardware.emulators.ur_rtde", "--host", host, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert "RTDE emulator" in proc.stdout.readline()
    return proc


def test_reads_fresh_state_and_notices_a_lost_controller():
    emu = _emulator("127.0.0.41", "--motion", "sine")
    ur = make_hardware("ur5e", host="127.0.0.41")
    try:
        ur.connect()
        a = ur.read()
        time.sleep(0.3)
        b = ur.read()
        assert a["joint_pos"].shape == (6,) and b["wrench"].shape == (6,)
        assert abs(a["joint_pos"][1] + 1.5708) < 0.25  # near the emulated home pose
        assert not np.allclose(a["joint_pos"], b["joint_pos"])  # the stream is live (the arm moves)
        emu.terminate()
        emu.wait(timeout=10)
        time.sleep(0.5)
        with pytest.raises(HardwareError, match="RTDE connection lost|no new RTDE state"):
            ur.read()
    finally:
        ur.disconnect()
        if emu.poll() is None:
            emu.terminate()
        emu.communicate(timeout=10)


def test_a_protective_stop_is_refused_by_name():
    emu = _emulator("127.0.0.42", "--safety-mode", "3")
    ur = make_hardware("ur5e", host="127.0.0.42")
    try:
        ur.connect()
        with pytest.raises(HardwareError, match=r"safety mode 3 \(protective stop\)"):
            ur.read()
        with pytest.raises(HardwareError, match="write before enable"):
            ur.write(np.zeros(6))
    finally:
        ur.disconnect()
        emu.terminate()
        emu.communicate(timeout=10)


def test_no_controller_is_a_clear_error():
    ur = make_hardware("ur5e", host="127.0.0.43")
    with pytest.raises(HardwareError, match="RTDE .*refused or silent"):
        ur.connect()

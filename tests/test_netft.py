"""ATI Net F/T over UDP (RDT): the driver against a loopback emulator of the box, and
ft_sensor_node publishing it on ``wrench`` over DDS."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import WrenchStamped
from procs import Probe, stop_process, stopped_cleanly, wait_for
from std_srvs.srv import Trigger

from rosmind.errors import HardwareError
from rosmind.hardware.emulators.netft import NetFTEmulator
from rosmind.hardware.sensors.netft import CMD_BIAS, CMD_START, RECORD, NetFT, request


def _wait(cond, timeout=10.0, what=""):
    wait_for(cond, timeout, what)


@pytest.mark.unit
def test_packet_layouts_follow_the_manual():
    assert request(CMD_START) == bytes.fromhex("1234000200000000")  # header, command, samples = 0
    assert request(CMD_BIAS, 5) == bytes.fromhex("1234004200000005")
    assert RECORD.size == 36


@pytest.mark.unit
def test_driver_reads_scales_tares_and_reports_faults():
    with NetFTEmulator(counts_per_force=1e6, counts_per_torque=1e3, noise=0.0) as box:
        box.load = np.array([1.0, -2.0, 12.5, 0.1, -0.2, 0.3])
        ft = NetFT("127.0.0.1", box.port, counts_per_force=1e6, counts_per_torque=1e3)
        with pytest.raises(HardwareError, match="no data yet"):
            ft.latest()
        ft.start()
        try:
            _wait(lambda: ft.received > 10, what="records")
            np.testing.assert_allclose(ft.latest()[0], box.load, atol=1e-3)
            ft.tare()
            _wait(lambda: np.allclose(ft.latest()[0], 0.0, atol=1e-3), what="tared")
            box.status = 0x80000000
            _wait(lambda: ft.status != 0, what="status")
            with pytest.raises(HardwareError, match="status word 0x80000000"):
                ft.latest()
            box.status = 0
            box.mute()
            time.sleep(0.3)
            with pytest.raises(HardwareError, match=r"no data for .* s"):
                ft.latest()
        finally:
            ft.stop()
        _wait(lambda: box.commands[-1] == 0, what="the stop command")  # stop on close
        assert box.commands[:2] == [CMD_START, CMD_BIAS] and box.peer is None


@pytest.mark.ros
def test_ft_sensor_node_publishes_wrench_and_stops_when_stale(ros_env):
    with NetFTEmulator(noise=0.01) as box:
        box.load = np.array([0.0, 0.0, 8.0, 0.0, 0.0, 0.0])
        proc = subprocess.Popen([sys.executable, "-m", "rosmind_ros.ft_sensor_node", "--ros-args", "-p",
                                 "address:=127.0.0.1", "-p", f"port:={box.port}", "-p", "frame_id:=tool0", "-p",
                                 "diagnostics_period_s:=0.2"], env=ros_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        probe = Probe("ft_probe")
        got: list[WrenchStamped] = probe.collect(WrenchStamped, "wrench")
        diags = probe.collect(DiagnosticArray, "/diagnostics", lambda m: m.status)
        tare = probe.node.create_client(Trigger, "wrench/tare")
        try:
            _wait(lambda: len(got) > 20, 60, "wrench messages")
            assert got[-1].header.frame_id == "tool0" and abs(got[-1].wrench.force.z - 8.0) < 0.1
            assert tare.wait_for_service(timeout_sec=10)
            fut = tare.call_async(Trigger.Request())
            _wait(fut.done, what="tare")
            assert fut.result().success
            _wait(lambda: abs(got[-1].wrench.force.z) < 0.1, what="tared wrench")
            box.mute()
            _wait(lambda: diags and int.from_bytes(diags[-1].level) == 2 and "no data" in diags[-1].message,
                  what="ERROR on /diagnostics")
            n = len(got)
            time.sleep(0.5)
            assert len(got) <= n + 1  # nothing stale is published
            box.mute(False)
            _wait(lambda: len(got) > n + 10 and int.from_bytes(diags[-1].level) == 0, what="streaming again")
        finally:
            probe.close()
            code = stop_process(proc)
            _, err = proc.communicate()
        assert stopped_cleanly(code, err), err[-2000:]


@pytest.mark.ros
def test_ft_sensor_node_without_an_address_exits_with_a_message(ros_env):
    r = subprocess.run([sys.executable, "-m", "rosmind_ros.ft_sensor_node"], env=ros_env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "address is required" in r.stderr

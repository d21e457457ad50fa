"""rosmind_ros.params: ROS parameters derived from config dataclasses; run_node's shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Literal

import pytest
import rclpy
from procs import rclpy_teardown_hang, stopped_cleanly
from rclpy.parameter import Parameter

from rosmind.errors import SpecError
from rosmind_ros.params import STOP_DEADLINE_S, declare_from_dataclass

pytestmark = pytest.mark.ros


@dataclass
class DemoConfig:
    robot: str
    rate_hz: float = 2.0
    count: int = 3
    enabled: bool = False
    mode: Literal["clamp", "reject"] = "clamp"
    gains: tuple[float, ...] = ()
    names: list[str] = field(default_factory=lambda: ["a"])
    limit: float | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0, got {self.rate_hz}")


@pytest.fixture
def make_node(ros_domain):
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    nodes = []

    def make(**overrides):
        params = [Parameter(k, value=v) for k, v in overrides.items()]
        node = rclpy.create_node(f"params_{len(nodes)}", context=ctx, parameter_overrides=params)
        nodes.append(node)
        return node

    try:
        yield make
    finally:
        for n in nodes:
            n.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_declares_every_field_with_its_default(make_node):
    node = make_node(robot="panda")
    cfg = declare_from_dataclass(node, DemoConfig)
    assert cfg == DemoConfig(robot="panda")
    assert node.get_parameter("rate_hz").value == 2.0
    assert node.get_parameter("names").value == ["a"]
    assert {"robot", "rate_hz", "count", "enabled", "mode", "gains", "names", "limit",
            "extra"} <= set(node._parameters)


def test_overrides_are_coerced_to_the_field_types(make_node):
    node = make_node(robot="a1", rate_hz=5, count=7, enabled=True, mode="reject",
                     gains=[1.0, 2.5], names=["x", "y"], limit=0.5, extra="{k: [1, 2]}")
    cfg = declare_from_dataclass(node, DemoConfig)
    assert cfg.rate_hz == 5.0 and isinstance(cfg.rate_hz, float)
    assert cfg.gains == (1.0, 2.5) and cfg.names == ["x", "y"] and cfg.limit == 0.5
    assert (cfg.count, cfg.enabled, cfg.mode, cfg.extra) == (7, True, "reject", {"k": [1, 2]})


@pytest.mark.parametrize("overrides,match", [
    ({}, "parameter 'robot' is required"),
    ({"robot": "p", "count": 1.5}, "parameter 'count': expected int"),
    ({"robot": "p", "mode": "bogus"}, r"parameter 'mode': expected one of \['clamp', 'reject'\]"),
    ({"robot": "p", "rate_hz": -1.0}, "rate_hz must be > 0"),
    ({"robot": "p", "extra": "[1]"}, "parameter 'extra': expected a YAML mapping"),
])
def test_bad_values_raise_spec_errors_naming_the_parameter(make_node, overrides, match):
    node = make_node(**overrides)
    with pytest.raises(SpecError, match=match):
        declare_from_dataclass(node, DemoConfig)


def test_skip_and_fixed_fields(make_node):
    node = make_node(robot="ignored")
    cfg = declare_from_dataclass(node, DemoConfig, skip=("extra",), robot="fixed")
    assert cfg.robot == "fixed" and not node.has_parameter("extra")
    assert not node.has_parameter("robot")


def test_sigterm_shuts_a_node_down_cleanly(ros_env):
    proc = subprocess.Popen([sys.executable, "-m", "rosmind_ros.safety_node", "--ros-args",
                             "-p", "enforce_workspace:=false"], env=ros_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        end = time.monotonic() + 20
        line = ""
        while "guarding robot" not in line and time.monotonic() < end:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "safety_node exited early"
        assert "guarding robot" in line
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        assert stopped_cleanly(proc.returncode, out), out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


_TEARDOWN_NODE = """
import ctypes, sys, time
from rclpy.node import Node
from rosmind_ros.params import run_node

how, seconds = sys.argv[1], float(sys.argv[2])

class TeardownNode(Node):
    if how == "no_deadline":
        stop_deadline_s = None

    def __init__(self):
        super().__init__("teardown_node")
        self._ready = self.create_timer(0.01, self._say_ready)

    def _say_ready(self):  # from the spin loop: construction is over, a SIGINT now is a stop
        self._ready.cancel()
        print("ready", flush=True)

    def destroy_node(self):
        if how == "c_holding_gil":
            ctypes.PyDLL(None).sleep(int(seconds))  # C code that keeps the GIL
        else:
            time.sleep(seconds)
        return super().destroy_node()

sys.exit(run_node(TeardownNode, sys.argv[:1]))
"""


def _sigint_node_with_teardown(ros_env, how: str, seconds: float) -> tuple[int, str]:
    """Start a node whose teardown takes ``seconds``, SIGINT it; return (exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, "-c", _TEARDOWN_NODE, how, str(seconds)], env=ros_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=STOP_DEADLINE_S + 15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


@pytest.mark.parametrize("how", ["python", "c_holding_gil"])
def test_a_hung_teardown_dumps_the_stacks_and_exits_within_the_deadline(ros_env, how):
    code, err = _sigint_node_with_teardown(ros_env, how, 600.0)
    assert code == 1, err
    assert "Timeout" in err and "most recent call first" in err, err  # faulthandler's dump
    assert "destroy_node" in err, err                                  # names where it hung
    if how == "python":  # the GIL was free: the explanation comes first
        assert err.index("teardown_node: shutdown not done") < err.index("Timeout"), err
    assert not rclpy_teardown_hang(err)  # the hang is the node's own code, not rclpy's


# run_node's dump of a real hang inside rclpy's node teardown (a fake talker under a launch,
# 2026-11-29, a loaded 2-core machine): the tests accept such a stop, and only such.
_RCLPY_HANG = """\
[listener] listener: clean shutdown after 3 messages
[talker] Timeout (0:00:04)!
[talker] Thread 0x00007f2953dff6c0 (most recent call first):
[talker]   File "/usr/lib/python3.11/threading.py", line 331 in wait
[talker]   File "/usr/lib/python3.11/threading.py", line 1399 in run
[talker]   File "/usr/lib/python3.11/threading.py", line 1002 in _bootstrap
[talker]
[talker] Thread 0x00007f298382d4c0 (most recent call first):
[talker]   File "/w/.venv/lib/python3.11/site-packages/rclpy/node.py", line 1965 in destroy_node
[talker]   File "/w/ros2_ws/src/rosmind_ros/rosmind_ros/params.py", line 290 in run_node
[talker]   File "/w/tests/launch_pkgs/fake_nodes/talker.py", line 36 in <module>
"""


def test_only_a_hang_inside_rclpy_teardown_counts_as_a_clean_stop():
    assert rclpy_teardown_hang(_RCLPY_HANG)
    assert stopped_cleanly(1, _RCLPY_HANG) and stopped_cleanly(0, "")
    assert not stopped_cleanly(2, _RCLPY_HANG) and not stopped_cleanly(1, "")
    ours = _RCLPY_HANG.replace("site-packages/rclpy/node.py", "rosmind_ros/safety_node.py")
    assert not rclpy_teardown_hang(ours)
    no_main = _RCLPY_HANG.replace(" in run_node", " in spin")
    assert not rclpy_teardown_hang(no_main)


def test_a_node_without_a_stop_deadline_may_take_longer(ros_env):
    code, err = _sigint_node_with_teardown(ros_env, "no_deadline", STOP_DEADLINE_S + 1.0)
    assert code == 0, err
    assert "Timeout" not in err, err

"""Process helpers shared by the ROS-tier tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys


def stop_process(proc: subprocess.Popen, timeout: float = 20.0, group: bool = False) -> int | None:
    """SIGINT (the clean-shutdown path every node implements), then SIGKILL after ``timeout``.

    Returns the exit code, or None when it had to be killed. ``group``: kill the process group
    (a launcher started with ``start_new_session``), not just the process.
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
            proc.wait(timeout=5)
            return None
    return proc.returncode


def rclpy_teardown_hang(output: str) -> bool:
    """Whether ``output`` (one node's stderr, or its ``[label] ``-prefixed launch lines) holds
    run_node's stop-deadline dump with the main thread stuck inside rclpy's own teardown.

    That is a rare hang below rosmind (rcl/Fast DDS node destruction, seen once in several
    hundred stops on a loaded 2-core machine); run_node ends the process with 1 after
    ``STOP_DEADLINE_S``. A hang anywhere else (rosmind's code, a node's callbacks) is not one.
    """
    text = re.sub(r"^\[[\w.-]+\] ", "", output, flags=re.M)
    if not re.search(r"^Timeout \(", text, re.M):
        return False
    # faulthandler: a "Thread 0x... (most recent call first):" header, then frames innermost first
    for block in re.split(r"^(?:Current thread|Thread) 0x[0-9a-f]+.*$", text, flags=re.M)[1:]:
        if " in run_node" in block:  # the main thread
            frames = [ln for ln in block.splitlines() if ln.strip().startswith("File ")]
            return bool(frames) and "/rclpy/" in frames[0]
    return False


def stopped_cleanly(code: int | None, output: str) -> bool:
    """A node process stopped in order: exit 0, or run_node's stop deadline ended a hang inside
    rclpy's teardown (``rclpy_teardown_hang``)."""
    return code == 0 or (code == 1 and rclpy_teardown_hang(output))


def run_to_end(cmd: list[str], env: dict, timeout: float) -> tuple[int, str]:
    """Run ``cmd`` (a launcher: its own process group) to its end; (exit code, stdout+stderr).
    Past ``timeout`` it is stopped and the test fails with the output's tail."""
    import pytest

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        stop_process(proc, group=True)
        out, _ = proc.communicate()
        pytest.fail(f"{cmd[2:5]} did not finish within {timeout} s; output:\n{out[-4000:]}")
    finally:
        stop_process(proc, group=True)


def start_policy_node(env: dict, checkpoint, *extra: str) -> subprocess.Popen:
    """policy_node hosting ``checkpoint`` in lockstep (a 60 s startup wait, /diagnostics every
    0.2 s), output captured; ``extra``: more ``--ros-args`` (``"-p", "mode:=realtime"``)."""
    return subprocess.Popen([sys.executable, "-m", "rosmind_ros.policy_node", "--ros-args", "-p",
                             f"checkpoint:={checkpoint}", "-p", "mode:=lockstep", "-p", "startup_timeout_s:=60.0",
                             "-p", "diagnostics_period_s:=0.2", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(cond, timeout: float, what: str) -> None:
    """Poll ``cond`` every 50 ms until it holds; AssertionError naming ``what`` after ``timeout`` s."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Probe:
    """A test-side rclpy node in its own context, spun by a background thread.

        with Probe("hw_probe") as p:
            states = p.collect(JointState, "joint_states")     # a list that fills as messages arrive
            cmd = p.node.create_publisher(...)
            p.wait(lambda: len(states) > 5, 30, "joint_states")
    """

    def __init__(self, name: str):
        import threading

        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self._rclpy = rclpy
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node(name, context=self.ctx)
        self.exec = SingleThreadedExecutor(context=self.ctx)
        self.exec.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.exec.spin_once(timeout_sec=0.05)

    def collect(self, msg_type, topic: str, keep=None) -> list:
        """Messages of ``topic`` as they arrive (``keep``: a function msg -> iterable of items to store instead)."""
        got: list = []
        self.node.create_subscription(msg_type, topic, got.append if keep is None else (lambda m: got.extend(keep(m))),
                                      10)
        return got

    wait = staticmethod(wait_for)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.node.destroy_node()
        self._rclpy.shutdown(context=self.ctx)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

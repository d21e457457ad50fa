"""Process helpers shared by the ROS-tier tests."""

from __future__ import annotations

import os
import signal
import subprocess


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

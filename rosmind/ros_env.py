"""Environment for processes that join a rosmind ROS 2 graph (no rclpy import here).

Every node process gets the Fast DDS implementation, rosmind's 16 MB shared-memory
profile (unless the user already chose one), and localhost-only discovery.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

FASTDDS_PROFILE = Path(__file__).parent / "config" / "fastdds.xml"


def ros_environ(domain_id: int | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if "FASTRTPS_DEFAULT_PROFILES_FILE" not in env and "FASTDDS_DEFAULT_PROFILES_FILE" not in env:
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


DOMAIN_LOCK_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "rosmind-domains"


def claim_domain(lock_dir: Path = DOMAIN_LOCK_DIR) -> tuple[int, IO[str]]:
    """A ROS_DOMAIN_ID in 1..100 that no other rosmind process on this machine holds.

    Returns ``(domain_id, lock_file)``; the claim lasts until ``lock_file`` is closed (or the
    process exits). Uses the same lock files as the test fixtures (tests/conftest.py), so a
    benchmark and a test run never share a DDS domain. 1..100 keeps the DDS ports clear of
    each other on Linux.
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    for did in range(1, 101):
        f = open(lock_dir / f"{did}.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return did, f
        except OSError:
            f.close()
    raise RuntimeError(f"no free ROS_DOMAIN_ID in 1..100 (all locked in {lock_dir})")

"""Environment for processes that join a rosmind ROS 2 graph (no rclpy import here).

Every node process gets the Fast DDS implementation, rosmind's 16 MB shared-memory
profile (unless the user already chose one), and localhost-only discovery.
"""

from __future__ import annotations

import os
from pathlib import Path

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

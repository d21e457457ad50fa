"""``rosmind replay EPISODE [name:=value ...]``: send a recorded episode's commands back
through safety_node to the robot (sim with ``mode:=realtime``, or hardware).

Runs the ``rosmind_ros.replay`` node in this shell's ROS environment (ROS_DOMAIN_ID,
namespace via ``__ns:=/arm``); ``name:=value`` pairs are its parameters: ``source:=inputs``
(what was asked of safety instead of what the robot received), ``speed:=0.5``, ``wait_s:=10``.
Exits with the node's status (0 when every command was sent).
"""

from __future__ import annotations

import re
import subprocess
import sys

from rosmind.errors import UserError

_PARAM = re.compile(r"^(__ns|[A-Za-z_][A-Za-z0-9_]*):=(.*)$")


def add_arguments(p):
    p.add_argument("episode", help="one episode directory (recorder_node output)")
    p.add_argument("params", nargs="*", metavar="name:=value", help="replay node parameters")


def run(args) -> int:
    from rosmind.episodes import find_episodes
    from rosmind.launch import module_exists
    from rosmind.ros_env import ros_environ

    found = find_episodes(args.episode)
    if len(found) != 1:
        raise UserError(f"{args.episode}: holds {len(found)} episodes; give one of them "
                        f"(e.g. {found[0]})")
    ros_args: list[str] = []
    for item in args.params:
        m = _PARAM.match(item)
        if m is None:
            raise UserError(f"replay: {item!r} is not name:=value")
        ros_args += ["-r", item] if m.group(1) == "__ns" else ["-p", item]
        if m.group(1) == "episode":
            raise UserError("replay: give the episode as the first argument, not episode:=")
    if not module_exists("rosmind_ros.replay"):
        raise UserError("rosmind_ros is not installed; install the repository with `make venv`")
    cmd = [sys.executable, "-m", "rosmind_ros.replay", "--ros-args", "-p", f"episode:={found[0]}", *ros_args]
    return subprocess.run(cmd, env=ros_environ()).returncode

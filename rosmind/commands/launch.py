"""``rosmind launch FILE [name:=value ...]``: run a ROS 2 YAML launch file.

The file is parsed and checked completely (arguments, packages, executables) before any
process starts; see ``rosmind.launch`` for the supported syntax and ``rosmind.supervisor``
for how nodes are run and stopped. Nodes get ``rosmind.ros_env.ros_environ()``: Fast DDS
with rosmind's shared-memory profile unless one is set, ROS_DOMAIN_ID inherited.
"""

from __future__ import annotations

import argparse
import shlex

from rosmind.launch import load_launch
from rosmind.ros_args import parse_cli_args
from rosmind.ros_env import ros_environ
from rosmind.supervisor import Supervisor

ACCEPTS_EXTRA = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="launch file (.launch.yaml)")
    parser.add_argument("--print", dest="print_only", action="store_true",
                        help="print each node's command line and exit without starting anything")
    parser.add_argument("--grace", type=float, default=5.0, metavar="S",
                        help="seconds between SIGINT and SIGTERM when stopping nodes (default 5)")
    parser.epilog = "Launch arguments follow the file as name:=value."


def run(args: argparse.Namespace) -> int:
    plan = load_launch(args.file, parse_cli_args(getattr(args, "extra", []) or []))
    if args.print_only:
        for node in plan.nodes:
            env = " ".join(f"{k}={v}" for k, v in node.env)
            print(f"{node.label}: {env + ' ' if env else ''}{shlex.join(node.argv())}")
        return 0
    return Supervisor(plan, ros_environ(), grace_s=args.grace).run()

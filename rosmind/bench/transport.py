"""``rosmind bench transport``: rclpy ping-pong RTT (floats, images with and without
rosmind's Fast DDS profile) and policy_node's sensor->command latency.

The measuring is ROS code, so it runs as a subprocess (``python -m
rosmind_ros.bench_transport run ...``); this side only picks a free ROS_DOMAIN_ID (unless
given) and passes the options on. See benchmarks/README.md for the JSON schema.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from rosmind.errors import UserError
from rosmind.launch import module_exists
from rosmind.ros_env import claim_domain

MODULE = "rosmind_ros.bench_transport"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", default="benchmarks/results/transport.json",
                   help="where to write the results (default: %(default)s)")
    p.add_argument("--domain", type=int, help="ROS_DOMAIN_ID (default: a free one in 1..100)")
    p.add_argument("--float-samples", type=int, default=500)
    p.add_argument("--float-rate", type=float, default=100.0, help="Hz")
    p.add_argument("--image-samples", type=int, default=200)
    p.add_argument("--image-rate", type=float, default=30.0, help="Hz")
    p.add_argument("--policy-samples", type=int, default=200)
    p.add_argument("--policy-modes", default="realtime,lockstep",
                   help="policy_node modes to try in order (default: %(default)s)")
    p.add_argument("--robot", default="panda")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--skip-policy", action="store_true")


def run(args: argparse.Namespace) -> int:
    for name in ("float_samples", "image_samples", "policy_samples"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("float_rate", "image_rate"):
        if not getattr(args, name) > 0:
            raise UserError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if not module_exists(MODULE):
        raise UserError(f"{MODULE} is not installed; install the repository with "
                        "`make venv` (or pip install -e .)")
    lock = None
    domain = args.domain
    if domain is None:
        domain, lock = claim_domain()
    cmd = [sys.executable, "-m", MODULE, "run", "--domain", str(domain),
           "--float-samples", str(args.float_samples), "--float-rate", str(args.float_rate),
           "--image-samples", str(args.image_samples), "--image-rate", str(args.image_rate),
           "--policy-samples", str(args.policy_samples), "--policy-modes", args.policy_modes,
           "--robot", args.robot, "--warmup", str(args.warmup)]
    if args.json:
        cmd += ["--json", args.json]
    if args.skip_policy:
        cmd.append("--skip-policy")
    try:
        return subprocess.run(cmd).returncode
    finally:
        if lock is not None:
            lock.close()

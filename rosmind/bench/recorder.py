"""``rosmind bench recorder``: recorder_node under load (2 cameras 640x480 rgb8 @ 30 Hz,
joint_states and wrench @ 500 Hz, published from their own process) -> published / recorded /
lost per topic, the recorder's CPU cores and MB/s.

The measuring is ROS code, so it runs as a subprocess (``python -m
rosmind_ros.bench_recorder run ...``); this side claims a free ROS_DOMAIN_ID (unless given)
and passes the options on. Targets (benchmarks/README.md): 0 lost, <= 1 core at 60 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from rosmind.errors import UserError
from rosmind.launch import module_exists
from rosmind.ros_env import claim_domain

MODULE = "rosmind_ros.bench_recorder"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=60.0, help="publishing window (default: %(default)s)")
    p.add_argument("--json", default="benchmarks/results/recorder.json",
                   help="where to write the results (default: %(default)s; '' = print only)")
    p.add_argument("--domain", type=int, help="ROS_DOMAIN_ID (default: a free one in 1..100)")
    p.add_argument("--cameras", type=int, default=2)
    p.add_argument("--camera-rate", type=float, default=30.0, help="Hz")
    p.add_argument("--joint-rate", type=float, default=500.0, help="joint_states Hz")
    p.add_argument("--wrench-rate", type=float, default=500.0, help="wrench Hz")
    p.add_argument("--compression", default="none", choices=("none", "lz4", "zstd"))
    p.add_argument("--out-dir", help="keep the episode in this folder (default: temporary, deleted)")


def run(args: argparse.Namespace) -> int:
    if not args.seconds > 0:
        raise UserError(f"--seconds must be > 0, got {args.seconds}")
    for name in ("camera_rate", "joint_rate", "wrench_rate"):
        if not getattr(args, name) > 0:
            raise UserError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if args.cameras < 0:
        raise UserError(f"--cameras must be >= 0, got {args.cameras}")
    if not module_exists(MODULE):
        raise UserError(f"{MODULE} is not installed; install the repository with `make venv`")
    lock = None
    domain = args.domain
    if domain is None:
        domain, lock = claim_domain()
    cmd = [sys.executable, "-m", MODULE, "run", "--domain", str(domain), "--seconds", str(args.seconds),
           "--cameras", str(args.cameras), "--camera-rate", str(args.camera_rate),
           "--joint-rate", str(args.joint_rate), "--wrench-rate", str(args.wrench_rate),
           "--compression", args.compression]
    if args.json:
        cmd += ["--json", args.json]
    if args.out_dir:
        cmd += ["--out-dir", args.out_dir, "--keep"]
    try:
        return subprocess.run(cmd).returncode
    finally:
        if lock is not None:
            lock.close()

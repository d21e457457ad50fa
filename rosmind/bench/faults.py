"""``rosmind bench faults``: fault trials on the sim graph (realtime, scripted expert): message
drop / delay / reorder / duplication and a slow policy on the policy's output, NaN / inf /
out-of-limit / jump chunks, policy_node killed and restarted, safety_node killed; per trial the
unsafe commands that reached the robot (target 0), the time to a safe state and the task's
success under the mild faults vs nominal.

The measuring is ROS code, so it runs as a subprocess (``python -m rosmind_ros.bench_faults run
...``); this side picks a free ROS_DOMAIN_ID and passes the options on.

    rosmind bench faults --json benchmarks/results/faults.json
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from rosmind.errors import UserError
from rosmind.launch import module_exists
from rosmind.ros_env import claim_domain, ros_environ

MODULE = "rosmind_ros.bench_faults"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", default="benchmarks/results/faults.json", help="(default: %(default)s)")
    p.add_argument("--trials", default="all", help="all, quick, or comma-separated trial names")
    p.add_argument("--episodes", type=int, default=5, help="episodes per mild-fault trial (default: %(default)s)")
    p.add_argument("--seed", type=int, default=100000)
    p.add_argument("--timeout", type=float, default=180.0, help="seconds per trial (default: %(default)s)")
    p.add_argument("--log-dir", default="", help="keep the nodes' logs here")


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {args.episodes}")
    if not module_exists(MODULE):
        raise UserError(f"{MODULE} is not installed; install the repository with `make venv`")
    domain, lock = claim_domain()
    cmd = [sys.executable, "-m", MODULE, "run", "--domain", str(domain), "--trials", args.trials,
           "--episodes", str(args.episodes), "--seed", str(args.seed), "--timeout", str(args.timeout),
           "--log-dir", args.log_dir, "--json", args.json or ""]
    try:
        return subprocess.call(cmd, env=ros_environ(domain))
    finally:
        lock.close()

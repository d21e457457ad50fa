"""``rosmind demo``: the main job. Launches the sim pick_place graph (robot_node in lockstep,
safety_node, policy_node) through real ROS 2 topics and prints each episode's outcome."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rosmind.errors import UserError

LAUNCH = Path(__file__).resolve().parents[2] / "launch" / "sim_pick_place.launch.yaml"


def add_arguments(p):
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed-start", type=int, default=1000)
    p.add_argument("--policy", default="expert", help="registry name (default: the scripted expert)")
    p.add_argument("--checkpoint", default="", help="checkpoint folder for a learned policy")
    p.add_argument("--launch", type=Path, default=LAUNCH)


def run(args) -> int:
    if not args.launch.exists():
        raise UserError(f"launch file {args.launch} does not exist")
    with tempfile.TemporaryDirectory(prefix="rosmind-demo-") as tmp:
        results = Path(tmp) / "results.json"
        cmd = [sys.executable, "-m", "rosmind.cli", "launch", str(args.launch),
               f"episodes:={args.episodes}", f"seed:={args.seed_start}", f"policy:={args.policy}",
               f"checkpoint:={args.checkpoint}", f"results:={results}"]
        print("$ rosmind launch " + " ".join(cmd[4:]), flush=True)
        rc = subprocess.call(cmd)
        if rc != 0:
            print(f"rosmind demo: the graph exited with code {rc}", file=sys.stderr)
            return rc
        if not results.exists():
            raise UserError(f"the graph finished but wrote no results file {results}")
        res = json.loads(results.read_text())
    eps = res["episodes"]
    print("\nepisode  seed   success  ticks  sim_time_s")
    for i, e in enumerate(eps):
        print(f"{i:>7}  {e['seed']:>5}  {str(e['success']):>7}  {e['ticks']:>5}  {e['sim_time']:>10.2f}")
    n_ok = sum(bool(e["success"]) for e in eps)
    print(f"\nsuccess {n_ok}/{len(eps)}")
    return 0

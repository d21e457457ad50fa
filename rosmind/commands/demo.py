"""``rosmind demo``: the main job. Launches the sim pick_place graph (robot_node in lockstep,
safety_node, policy_node hosting the shipped Diffusion Policy checkpoint) through real ROS 2
topics, prints each episode's outcome, the success rate and the command latency, and writes
an MP4 of the first rollout."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rosmind.errors import UserError
from rosmind.stats import wilson_interval

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "launch" / "sim_pick_place.launch.yaml"
CHECKPOINT = REPO / "checkpoints" / "diffusion_pick_place"


def add_arguments(p):
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed-start", type=int, default=100_000, help="seeds the checkpoint never saw")
    p.add_argument("--checkpoint", default=str(CHECKPOINT), help="checkpoint folder ('' = --policy)")
    p.add_argument("--policy", default="expert", help="registry name, used when --checkpoint is ''")
    p.add_argument("--video", type=Path, default=REPO / "outputs" / "demo.mp4")
    p.add_argument("--launch", type=Path, default=LAUNCH)


def run(args) -> int:
    if not args.launch.exists():
        raise UserError(f"launch file {args.launch} does not exist")
    if args.checkpoint and not (Path(args.checkpoint) / "manifest.json").exists():
        raise UserError(f"checkpoint {args.checkpoint}: no manifest.json there")
    with tempfile.TemporaryDirectory(prefix="rosmind-demo-") as tmp:
        results = Path(tmp) / "results.json"
        cmd = [sys.executable, "-m", "rosmind.cli", "launch", str(args.launch),
               f"episodes:={args.episodes}", f"seed:={args.seed_start}", f"policy:={args.policy}",
               f"checkpoint:={args.checkpoint}", f"results:={results}", f"video:={args.video}"]
        print("$ rosmind launch " + " ".join(cmd[4:]), flush=True)
        rc = subprocess.call(cmd)
        if rc != 0:
            print(f"rosmind demo: the graph exited with code {rc}", file=sys.stderr)
            return rc
        if not results.exists():
            raise UserError(f"the graph finished but wrote no results file {results}")
        res = json.loads(results.read_text())
    eps = res["episodes"]
    print(f"\npolicy: {args.checkpoint or args.policy}")
    print("episode  seed     success  ticks  sim_time_s")
    for i, e in enumerate(eps):
        print(f"{i:>7}  {e['seed']:>7}  {str(e['success']):>7}  {e['ticks']:>5}  {e['sim_time']:>10.2f}")
    k, n = sum(bool(e["success"]) for e in eps), len(eps)
    lo, hi = wilson_interval(k, n)
    print(f"\nsuccess {k}/{n} (95% CI {lo:.2f}-{hi:.2f})")
    rt = res.get("latency", {}).get("round_trip_ms")
    if rt:
        print(f"sensor -> policy -> safety -> robot round trip: p50 {rt['p50']:.1f} ms, p99 {rt['p99']:.1f} ms "
              f"(lockstep; includes inference on planning ticks)")
    if args.video.exists():
        print(f"video of episode 0: {args.video}")
    return 0

"""A vision checkpoint in the ROS graph: success in lockstep vs realtime on the same seeds, and
where the time goes per stage (render, image DDS hop, decode, image age, inference, publish,
safety) with how often the robot had no plan.

    rosmind bench camera_graph --checkpoint checkpoints/diffusion_pick_place_rgb --episodes 20 \\
        --json benchmarks/results/camera_graph.json

Each mode runs launch/sim_pick_place.launch.yaml (robot_node with cameras, policy_node,
safety_node) with per-message timelines (``rosmind.timeline``) from the three nodes, joined by
message stamp: the nodes share the machine's monotonic clock, so a hop between processes is
measured directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rosmind.bench import write_result
from rosmind.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "sim_pick_place.launch.yaml"
DEFAULT_CKPT = ROOT / "checkpoints" / "diffusion_pick_place_rgb"


def add_arguments(p):
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CKPT)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed-start", type=int, default=100000)
    p.add_argument("--modes", default="lockstep,realtime")
    p.add_argument("--json", type=Path, default=None)


def stages(robot_rows, policy_rows, safety_rows) -> dict:
    """Per-stage latency summaries (ms) from the three nodes' timelines."""
    from rosmind.stats import latency_summary
    from rosmind.timeline import index, join

    published, received = index(robot_rows, "publish"), index(policy_rows, "recv")
    used, infer, plans = index(policy_rows, "used"), index(policy_rows, "infer"), index(policy_rows, "plan")
    commands, filtered = index(robot_rows, "command"), index(safety_rows, "filter")
    values = lambda d: [v for _, v in d.values()]  # noqa: E731
    return {
        "render_ms": latency_summary(values(published)),
        "image_dds_hop_ms": latency_summary(join(published, received)),
        "decode_to_numpy_ms": latency_summary(values(received)),
        "image_age_at_inference_ms": latency_summary(join(published, used)),
        "image_age_at_inference_sim_ms": latency_summary(values(used)),
        "inference_ms": latency_summary(values(infer)),
        "publish_ms": latency_summary(values(plans)),
        "safety_filter_ms": latency_summary(values(filtered)),
        # policy_node publish -> safety_node (filter) -> robot_node receive: two DDS hops + filter
        "plan_to_robot_ms": latency_summary(join(plans, commands)),
    }


def run_mode(checkpoint: Path, mode: str, episodes: int, seed: int) -> dict:
    from rosmind.sim.cameras import checkpoint_cameras
    from rosmind.stats import wilson_interval
    from rosmind.timeline import load_rows

    with tempfile.TemporaryDirectory(prefix="rosmind-camgraph-") as tmp:
        d = Path(tmp)
        cmd = [sys.executable, "-m", "rosmind.cli", "launch", str(LAUNCH), f"checkpoint:={checkpoint.resolve()}",
               f"mode:={mode}", "cameras:=true",
               f"camera_names:={','.join(checkpoint_cameras(checkpoint))}", f"episodes:={episodes}", f"seed:={seed}",
               f"results:={d / 'results.json'}", f"robot_timeline:={d / 'robot.json'}",
               f"policy_timeline:={d / 'policy.json'}", f"safety_timeline:={d / 'safety.json'}"]
        rc = subprocess.call(cmd, stdout=subprocess.DEVNULL, env=os.environ.copy())
        if rc != 0 or not (d / "results.json").exists():
            raise UserError(f"camera_graph {mode}: the ROS graph exited with code {rc}")
        res = json.loads((d / "results.json").read_text())
        rows = {n: load_rows(d / f"{n}.json") if (d / f"{n}.json").exists() else []
                for n in ("robot", "policy", "safety")}
    eps = res["episodes"]
    k, n = sum(bool(e["success"]) for e in eps), len(eps)
    return {"success_rate": k / n if n else 0.0, "ci95": list(wilson_interval(k, n)), "successes": k,
            "episodes": n, "seeds": [e["seed"] for e in eps], "success": [bool(e["success"]) for e in eps],
            "no_plan_ticks": res.get("no_plan_ticks", 0), "ticks": res.get("ticks"),
            "no_plan_ticks_per_episode": [e.get("no_plan_ticks", 0) for e in eps],
            "late_ticks": res.get("late_ticks"), "missed_commands": res.get("missed_commands"),
            "round_trip_ms": res.get("latency", {}).get("round_trip_ms"),
            "stages": stages(rows["robot"], rows["policy"], rows["safety"]),
            # the image topics robot_node rendered and published: the checkpoint's cameras only
            "camera_topics": sorted({t for ev, t, *_ in rows["robot"] if ev == "publish"})}


def run(args) -> int:
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in ("lockstep", "realtime")]
    if bad or not modes:
        raise UserError(f"--modes {args.modes!r}: choose from lockstep, realtime")
    if not (args.checkpoint / "manifest.json").exists():
        raise UserError(f"{args.checkpoint}: no checkpoint (manifest.json) there")
    if args.episodes < 1:
        raise UserError("--episodes must be >= 1")
    out = {"checkpoint": str(args.checkpoint), "cpu_count": os.cpu_count(), "episodes": args.episodes,
           "seed_start": args.seed_start, "modes": {}}
    for mode in modes:
        r = run_mode(args.checkpoint, mode, args.episodes, args.seed_start)
        out["modes"][mode] = r
        st = r["stages"]
        print(f"{mode}: {r['successes']}/{r['episodes']} (95% {r['ci95'][0]:.3f}-{r['ci95'][1]:.3f}); "
              f"no-plan ticks {r['no_plan_ticks']} of {r['ticks']}")
        for name, s in st.items():
            print(f"  {name:>32}: p50 {s['p50']:8.2f}  p99 {s['p99']:8.2f}  (n={s['n']})")
    if args.json:
        write_result(args.json, out)
    return 0

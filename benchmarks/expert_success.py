"""Scripted expert on pick_place over N seeds, plus sim step and render costs.

    .venv/bin/python benchmarks/expert_success.py [--seeds 50] [--out benchmarks/results/expert.json]

Writes: success rate (with its Wilson 95% interval), mean/max episode ticks, wall and CPU
time per episode, physics+control time per Panda tick without cameras, render time per camera
frame. Times are CPU seconds of this process (``time.process_time``; PyBullet runs in this
thread) so that a busy machine does not inflate them; wall times are reported beside them.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

from rosmind.registry import POLICIES
from rosmind.sim.robots import make_sim
from rosmind.sim.rollout import run_episode
from rosmind.stats import wilson_interval


def step_and_render_costs(ticks: int = 400, frames: int = 30) -> dict:
    with make_sim("panda", "pick_place") as sim:
        sim.reset(0)
        q = sim.setpoint.copy()
        t0 = time.process_time()
        for i in range(ticks):
            q[0] = 0.3 * math.sin(i / 20)
            sim.write(q)
            sim.step()
            sim.read()
        tick_ms = (time.process_time() - t0) / ticks * 1e3
        render_ms = {}
        for cam in sim.cameras:
            t0 = time.process_time()
            for _ in range(frames):
                sim.render(cam)
            render_ms[cam] = (time.process_time() - t0) / frames * 1e3
    return {"panda_tick_ms_no_cameras": tick_ms, "render_ms_per_frame": render_ms}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--out", default="benchmarks/results/expert.json")
    args = ap.parse_args(argv)
    entry = POLICIES.get("expert")
    policy = entry.factory(entry.config())
    results = []
    cpu0 = time.process_time()
    with make_sim("panda", "pick_place") as sim:
        for seed in range(args.seeds):
            results.append(run_episode(sim, policy, seed))
    cpu_per_episode = (time.process_time() - cpu0) / args.seeds
    k = sum(r.success for r in results)
    ticks = np.array([r.ticks for r in results])
    out = {
        "task": "pick_place", "policy": "expert", "seeds": args.seeds, "successes": k,
        "success_rate": k / args.seeds, "success_ci95": wilson_interval(k, args.seeds),
        "failed_seeds": [r.seed for r in results if not r.success],
        "mean_ticks": float(ticks.mean()), "max_ticks": int(ticks.max()),
        "mean_sim_time_s": float(np.mean([r.sim_time for r in results])),
        "mean_wall_time_s": float(np.mean([r.wall_time for r in results])),
        "mean_cpu_time_s": cpu_per_episode,
        **step_and_render_costs(),
        "machine": platform.processor() or platform.machine(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0 if out["success_rate"] >= 0.95 else 1


if __name__ == "__main__":
    raise SystemExit(main())

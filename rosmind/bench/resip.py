"""ResiP: the frozen base alone vs base + residual on the same unseen seeds (direct mode, the
episode-seeded sampling noise so both see the same base plans), with Wilson intervals, the
residual's size next to the base's per-tick motion, and the RL run's record from the manifest.

    rosmind bench resip --checkpoint checkpoints/resip_peg_insert --episodes 200 \\
        --json benchmarks/results/resip.json
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from rosmind.bench import write_result
from rosmind.errors import UserError


def add_arguments(p):
    p.add_argument("--checkpoint", type=Path, required=True, help="a resip checkpoint (it names its base)")
    p.add_argument("--task", default="peg_insert")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seed-start", type=int, default=100000)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--run", type=Path, default=None,
                   help="the RL run folder (its progress.jsonl): the learning curve, success per block vs env steps")
    p.add_argument("--curve", type=Path, default=None, help="with --run: write the learning curve as this PNG")
    p.add_argument("--curve-episodes", type=int, default=100,
                   help="each point of the learning curve: at least this many training episodes")


def learning_curve(run: Path, min_episodes: int = 1) -> dict:
    """Success rate of the episodes that ended in each stretch of the RL run (consecutive
    checkpoint blocks, merged until at least ``min_episodes`` episodes ended in it), against the
    env steps at its end (``progress.jsonl``: cumulative episodes and successes)."""
    from rosmind.policies.rl import PROGRESS

    path = Path(run) / PROGRESS
    if not path.is_file():
        raise UserError(f"--run: {path} does not exist (a run of `rosmind train --policy resip`)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    steps, rate, episodes = [], [], []
    prev_e = prev_s = 0
    for r in rows:
        if "episodes" not in r:
            raise UserError(f"{path}: line {r} has no episode counts")
        de, ds = r["episodes"] - prev_e, r["successes"] - prev_s
        if de >= max(1, min_episodes):
            prev_e, prev_s = r["episodes"], r["successes"]
            steps.append(r["env_steps"])
            rate.append(ds / de)
            episodes.append(de)
    return {"env_steps": steps, "success_rate": rate, "episodes": episodes}


def _run(policy, task: str, seeds: list[int], sizes: list | None = None) -> dict:
    from rosmind.policies.executors import make_executor
    from rosmind.sim.robots import make_sim
    from rosmind.sim.rollout import run_episode
    from rosmind.stats import wilson_interval

    sim = make_sim(policy.config.robot, task)
    success = []
    try:
        for seed in seeds:
            ex = make_executor(policy)
            if sizes is not None:  # per tick: |residual| and |base step| (the base's own motion)
                inner_action = ex.action

                def action(tick, inner_action=inner_action, ex=ex):
                    out = inner_action(tick)
                    base = ex.inner.action(tick)
                    prev = ex.inner._sent.get(tick - 1)
                    if out is not None and base is not None and prev is not None:
                        sizes.append((np.abs(out - base).mean(), np.abs(base - prev).mean()))
                    return out
                ex.action = action
            success.append(run_episode(sim, policy, seed, executor=ex, noise="episode").success)
    finally:
        sim.disconnect()
    k, n = int(sum(success)), len(success)
    return {"successes": k, "episodes": n, "success_rate": k / n if n else 0.0,
            "ci95": list(wilson_interval(k, n)), "success": [bool(s) for s in success]}


def run(args) -> int:
    from rosmind.checkpoint import load_checkpoint, read_manifest

    manifest = read_manifest(args.checkpoint)
    if manifest["family"] != "resip":
        raise UserError(f"{args.checkpoint}: a {manifest['family']!r} checkpoint, not a resip one")
    if args.episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {args.episodes}")
    if args.curve is not None and args.run is None:
        raise UserError("--curve needs --run (the RL run folder)")
    curve = learning_curve(args.run, args.curve_episodes) if args.run is not None else None
    policy = load_checkpoint(args.checkpoint)
    seeds = list(range(args.seed_start, args.seed_start + args.episodes))
    base = _run(policy.base, args.task, seeds)
    sizes: list = []
    composed = _run(policy, args.task, seeds, sizes)
    res, step = (float(np.mean([s[i] for s in sizes])) if sizes else None for i in (0, 1))
    training = manifest.get("training", {})
    wall = training.get("wall_s")
    out = {"checkpoint": str(args.checkpoint), "base": policy.config.base, "task": args.task, "seeds": seeds,
           "cpu_count": os.cpu_count(), "base_alone": base, "base_plus_residual": composed,
           "gain_points": round(100 * (composed["success_rate"] - base["success_rate"]), 1),
           "residual_mean_abs": res, "base_step_mean_abs": step,
           "residual_over_base_step": (res / step) if res is not None and step else None,
           "rl": {"iterations": training.get("iterations"), "env_steps": training.get("env_steps"), "wall_s": wall,
                  "env_steps_per_s": (training.get("env_steps") / wall) if wall else None}}
    if curve is not None:
        out["learning_curve"] = curve
        if args.curve is not None:
            from rosmind.bench.plot import line_chart

            span = [0, *curve["env_steps"][-1:]]  # the base's eval rate, across the run
            line_chart(args.curve, {"training episodes (residual sampled)": (curve["env_steps"], curve["success_rate"]),
                                    "base alone (eval)": (span, [base["success_rate"]] * len(span))},
                       f"ResiP on {args.task}: training success per {args.curve_episodes}+ episodes", "env steps",
                       "success rate", (0.0, 1.0))
    print(f"base {base['successes']}/{base['episodes']} (95% {base['ci95'][0]:.3f}-{base['ci95'][1]:.3f}); "
          f"base + residual {composed['successes']}/{composed['episodes']} "
          f"(95% {composed['ci95'][0]:.3f}-{composed['ci95'][1]:.3f}); residual {res} vs base step {step}")
    if args.json:
        write_result(args.json, out)
    return 0

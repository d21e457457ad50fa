"""Inference latency of a diffusion checkpoint per sampler: DDIM 1, 5, 10, 16 and DDPM 10 (strided), 100.

    rosmind bench inference [--checkpoint checkpoints/diffusion_pick_place] --json benchmarks/results/inference.json

Observations come from a real pick_place reset (seeded), so the normalizer and encoder see
realistic inputs. Each variant is warmed up, then timed over ``--iters`` calls of ``infer``
(one chunk, batch 1, as policy_node calls it). torch uses the machine's cores (2 here).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from rosmind.bench import write_result
from rosmind.errors import UserError

DEFAULT_CKPT = Path(__file__).resolve().parents[2] / "checkpoints" / "diffusion_pick_place"
VARIANTS = (("ddim", 1), ("ddim", 5), ("ddim", 10), ("ddim", 16), ("ddpm", 10), ("ddpm", 100))


def add_arguments(p):
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CKPT)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--json", type=Path, default=None)


def measure(policy, obs: dict, iters: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        policy.infer(obs)
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        policy.infer(obs)
        out.append(time.perf_counter() - t0)
    return out


def example_obs(policy, robot: str = "panda", task: str = "pick_place", seed: int = 0) -> dict:
    """The policy's obs history at the first tick of a seeded episode."""
    from rosmind.sim.robots import make_sim
    from rosmind.sim.rollout import ObsHistory

    cfg = policy.config
    with make_sim(robot, task) as sim:
        o = sim.reset(seed)
        for k in cfg.obs_keys:
            if k.startswith("camera/"):
                o[k] = sim.render(k.split("/")[1])[0]
        return ObsHistory(cfg.obs_keys, cfg.n_obs_steps).push(o)


def run(args) -> int:
    import torch

    from rosmind.checkpoint import load_checkpoint
    from rosmind.stats import latency_summary

    if not (args.checkpoint / "manifest.json").exists():
        raise UserError(f"{args.checkpoint}: no checkpoint (manifest.json) there; train one or pass --checkpoint")
    policy = load_checkpoint(args.checkpoint)
    if not hasattr(policy, "set_sampler"):
        raise UserError(f"{args.checkpoint}: not a diffusion checkpoint (family {policy.manifest['family']!r})")
    obs = example_obs(policy)
    results = {}
    for sampler, steps in VARIANTS:
        policy.set_sampler(sampler, steps)
        policy.reseed()
        s = latency_summary(measure(policy, obs, args.iters))
        results[f"{sampler}{steps}"] = s
        print(f"{sampler.upper():>5} {steps:>3} steps: p50 {s['p50']:7.2f} ms  p99 {s['p99']:7.2f} ms")
    params = sum(p.numel() for p in policy.parameters())
    out = {"checkpoint": str(args.checkpoint), "params": params, "torch_threads": torch.get_num_threads(),
           "cpu_count": os.cpu_count(), "iters": args.iters, "latency_ms": results,
           "target_ddim10_p50_ms": 25.0, "meets_target": results["ddim10"]["p50"] <= 25.0}
    if args.json:
        write_result(args.json, out)
    return 0

"""RDP vs Diffusion Policy on the contact-rich ``wipe`` task, side by side in one run.

    rosmind bench rdp --rdp checkpoints/rdp_wipe --dp checkpoints/rdp_wipe/baselines/dp \\
        --dp-wrench checkpoints/rdp_wipe/baselines/dp_wrench --episodes 100 --json benchmarks/results/rdp.json

Variants, each on the same unseen seeds (``noise=episode``: every chunk's sampling noise seeded by
the episode seed and its tick): RDP; RDP with the decoder's force input zeroed (ablation); DP
trained on the same demonstrations without the wrench; DP with the wrench as an observation.
Per variant: success (Wilson 95 % interval), mean % of wiping ticks inside the force window,
mean force RMSE and max force.

**Reaction latency**: paired episodes per seed, identical until tick ``--bump-tick`` where one
of them has the board bumped by ``--bump-height`` (the other by 0 m: same random draws, so both
runs match tick for tick until then). The bump happens at the end of tick K's physics; the
wrench read at tick K + 1 is the first to show it, so the fastest possible response is the
command of tick K + 1: a latency of 1 tick. The latency is the number of ticks from K to the
first command whose tool height (forward kinematics of the commanded joints) differs between
the two runs by more than ``--response-mm`` (1 mm: 1 N on this board; any change at all would
count a negligible twitch as a reaction), over the pairs touching the board at the bump. The default K = 99 puts that reading mid-chunk for both families (RDP plans
every 16 ticks, DP every 8, from tick 0).

**Loop rates**: with ``--graph-episodes`` > 0, the RDP checkpoint runs in the ROS graph
(launch/sim_wipe.launch.yaml, ``mode:=realtime``) with policy_node's timeline: slow loop
(inference) and fast loop (per-tick decode) periods and latencies, p50/p99, measured inside
policy_node.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from rosmind.bench import write_result
from rosmind.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "sim_wipe.launch.yaml"
CKPT = ROOT / "checkpoints" / "rdp_wipe"


def add_arguments(p):
    p.add_argument("--rdp", type=Path, default=CKPT)
    p.add_argument("--dp", type=Path, default=CKPT / "baselines" / "dp")
    p.add_argument("--dp-wrench", type=Path, default=CKPT / "baselines" / "dp_wrench")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed-start", type=int, default=100000)
    p.add_argument("--latency-episodes", type=int, default=20)
    p.add_argument("--bump-tick", type=int, default=99)
    p.add_argument("--bump-height", type=float, default=0.008)
    p.add_argument("--response-mm", type=float, default=1.0,
                   help="a response: the commanded tool height differs by more than this between the twins")
    p.add_argument("--graph-episodes", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--variants", default="rdp,rdp_zero_force,dp,dp_wrench")
    p.add_argument("--json", type=Path, default=None)


def _load(variant: str, paths: dict[str, str]):
    import dataclasses

    from rosmind.checkpoint import load_checkpoint

    policy = load_checkpoint(paths["dp" if variant == "dp" else "dp_wrench" if variant == "dp_wrench" else "rdp"])
    if variant == "rdp_zero_force":
        policy.config = dataclasses.replace(policy.config, fast_input="zero")
    return policy


def _episode(args) -> dict:
    """One seeded episode of ``variant``; with ``bump`` = (tick, height) the board is bumped there.
    Returns the task's metrics and the commands sent."""
    import torch

    from rosmind.sim.robots import make_sim
    from rosmind.sim.rollout import run_episode

    variant, paths, seed, bump = args
    torch.set_num_threads(1)
    key = (variant, tuple(sorted(paths.items())))
    if _CACHE.get("key") != key:
        _CACHE.update(key=key, policy=_load(variant, paths))
    opts = {"push_tick": bump[0], "push_height": (bump[1], bump[1])} if bump is not None else {}
    sim = make_sim("panda", "wipe", **opts)
    cmds: list = []
    forces: list = []

    def on_tick(t, o, a):
        cmds.append(None if a is None else np.asarray(a, dtype=np.float64))
        forces.append(sim.task.force_now)

    try:
        r = run_episode(sim, _CACHE["policy"], seed, noise="episode", on_tick=on_tick)
        st = sim.task_status()
    finally:
        sim.disconnect()
    return {"seed": seed, "success": bool(r.success), "ticks": r.ticks, "in_window": st["in_window"],
            "force_rmse": st["force_rmse"], "max_force": st["max_force"], "path_error": st["path_error"],
            "commands": cmds if bump else None,
            "forces": forces if bump else None}


_CACHE: dict = {}


def _pool(workers: int):
    return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))


def evaluate_variant(variant: str, paths: dict, seeds: list[int], workers: int) -> dict:
    from rosmind.stats import wilson_interval

    with _pool(workers) as pool:
        eps = list(pool.map(_episode, [(variant, paths, s, None) for s in seeds]))
    k, n = sum(e["success"] for e in eps), len(eps)
    finite = lambda key: [e[key] for e in eps if np.isfinite(e[key])]  # noqa: E731
    return {"successes": k, "episodes": n, "success_rate": k / n, "ci95": list(wilson_interval(k, n)),
            "in_window_mean": float(np.mean([e["in_window"] for e in eps])),
            "force_rmse_mean_n": float(np.mean(finite("force_rmse"))) if finite("force_rmse") else None,
            "max_force_mean_n": float(np.mean([e["max_force"] for e in eps])),
            # mean |x - path_x| while wiping, m (success needs <= the task's max_path_error)
            "path_error_median_m": float(np.median(finite("path_error"))) if finite("path_error") else None,
            "per_episode": [{k2: e[k2] for k2 in ("seed", "success", "in_window", "force_rmse", "max_force", "path_error")}
                            for e in eps]}


def reaction_latency(variant: str, paths: dict, seeds: list[int], tick: int, height: float, workers: int,
                     response_mm: float = 1.0) -> dict:
    """Ticks from the bump until the commanded tool height differs from the unbumped twin's by
    more than ``response_mm``."""
    from rosmind.sim.experts import PandaKinematics
    from rosmind.spec import load_spec

    jobs = [(variant, paths, s, (tick, h)) for s in seeds for h in (height, 0.0)]
    with _pool(workers) as pool:
        eps = list(pool.map(_episode, jobs))
    kin = PandaKinematics(load_spec("panda"))
    lat, touching = [], []
    for a, b in zip(eps[::2], eps[1::2], strict=True):
        touching.append(len(b["forces"]) > tick + 1 and b["forces"][tick + 1] > 1.0)
        first = None
        for t in range(tick + 1, min(len(a["commands"]), len(b["commands"]))):
            ca, cb = a["commands"][t], b["commands"][t]
            if ca is None or cb is None:
                continue
            if abs(kin.fk(ca[:7])[2] - kin.fk(cb[:7])[2]) > response_mm * 1e-3:
                first = t - tick
                break
        lat.append(first)
    kin.close()
    got = [x for x, c in zip(lat, touching, strict=True) if c and x is not None]
    return {"bump_tick": tick, "bump_height_m": height, "response_mm": response_mm, "per_seed_ticks": lat,
            "touching_at_bump": touching,
            "pairs_touching": sum(touching), "median_ticks": float(np.median(got)) if got else None,
            "max_ticks": max(got) if got else None,
            "never_responded": sum(1 for x, c in zip(lat, touching, strict=True) if c and x is None)}


def loop_rates(checkpoint: Path, episodes: int, seed: int) -> dict:
    from rosmind.stats import latency_summary
    from rosmind.timeline import load_rows

    with tempfile.TemporaryDirectory(prefix="rosmind-rdp-") as tmp:
        d = Path(tmp)
        cmd = [sys.executable, "-m", "rosmind.cli", "launch", str(LAUNCH), f"checkpoint:={checkpoint.resolve()}",
               "mode:=realtime", f"episodes:={episodes}", f"seed:={seed}", f"results:={d / 'results.json'}",
               f"policy_timeline:={d / 'policy.json'}"]
        rc = subprocess.call(cmd, stdout=subprocess.DEVNULL, env=os.environ.copy())
        if rc != 0 or not (d / "results.json").exists():
            raise UserError(f"rdp loop rates: the ROS graph exited with code {rc}")
        res = json.loads((d / "results.json").read_text())
        rows = load_rows(d / "policy.json")

    def marks(event):
        return sorted((mono, value) for ev, _topic, _stamp, mono, value in rows if ev == event)

    out = {}
    for loop, event in (("slow", "infer"), ("fast", "fast")):
        m = marks(event)
        times = np.array([x[0] for x in m])
        gaps = np.diff(times)
        gaps = gaps[gaps < 2.0]  # between episodes the robot resets: not a loop period
        out[loop] = {"calls": len(m), "period_ms": latency_summary(list(gaps)),
                     "rate_hz_median": float(1.0 / np.median(gaps)) if len(gaps) else None,
                     "latency_ms": latency_summary([x[1] for x in m])}
    eps = res["episodes"]
    out["episodes"] = len(eps)
    out["successes"] = sum(bool(e["success"]) for e in eps)
    return out


def run(args) -> int:
    variants = [v for v in args.variants.split(",") if v]
    known = ("rdp", "rdp_zero_force", "dp", "dp_wrench")
    bad = [v for v in variants if v not in known]
    if bad:
        raise UserError(f"--variants: unknown {bad}; choose from {', '.join(known)}")
    paths = {"rdp": str(args.rdp), "dp": str(args.dp), "dp_wrench": str(args.dp_wrench)}
    for name, p in paths.items():
        needed = {"rdp": ("rdp", "rdp_zero_force"), "dp": ("dp",), "dp_wrench": ("dp_wrench",)}[name]
        if any(v in variants for v in needed) and not (Path(p) / "manifest.json").exists():
            raise UserError(f"--{name.replace('_', '-')} {p}: no checkpoint (manifest.json) there")
    seeds = list(range(args.seed_start, args.seed_start + args.episodes))
    out = {"benchmark": "rdp", "task": "wipe", "cpu_count": os.cpu_count(), "checkpoints": paths,
           "seed_start": args.seed_start, "episodes": args.episodes, "variants": {}, "reaction": {}}
    for v in variants:
        r = evaluate_variant(v, paths, seeds, args.workers)
        out["variants"][v] = r
        print(f"{v:>15}: success {r['successes']}/{r['episodes']} ({r['ci95'][0]:.3f}-{r['ci95'][1]:.3f})  "
              f"in-window {100 * r['in_window_mean']:.1f} %  force RMSE {r['force_rmse_mean_n']} N  "
              f"path error median {r['path_error_median_m']} m", flush=True)
    lat_seeds = seeds[:args.latency_episodes]
    for v in variants if args.latency_episodes > 0 else ():
        r = reaction_latency(v, paths, lat_seeds, args.bump_tick, args.bump_height, args.workers, args.response_mm)
        out["reaction"][v] = r
        print(f"{v:>15}: reaction median {r['median_ticks']} ticks, max {r['max_ticks']}, never "
              f"{r['never_responded']} (of {r['pairs_touching']} pairs touching at the bump)", flush=True)
    if args.graph_episodes > 0 and "rdp" in variants:
        out["policy_node_loops"] = r = loop_rates(args.rdp, args.graph_episodes, args.seed_start)
        for loop in ("slow", "fast"):
            x = r[loop]
            print(f"policy_node {loop}: {x['rate_hz_median']} Hz, latency p50 {x['latency_ms']['p50']:.2f} ms "
                  f"p99 {x['latency_ms']['p99']:.2f} ms", flush=True)
    if args.json:
        write_result(args.json, out)
    return 0

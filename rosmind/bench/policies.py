"""Side-by-side policy families on one task: success over the same unseen seeds, size, speed.

    rosmind bench policies --task pick_place --policies diffusion,carp --episodes 100 \\
        --json benchmarks/results/carp_vs_diffusion.json

``diffusion`` is run twice from one checkpoint, with DDPM (100 steps) and DDIM (10 steps);
``carp`` once, with the sampling its checkpoint was saved with. Success comes from
``rosmind.sim.evaluate.evaluate`` (the ``rosmind eval`` protocol, vectorized over
``--n-envs``), with Wilson 95% intervals. Latency is timed apart from the rollouts, as
``policy_node`` calls a policy: ``infer`` on one observation (batch 1), after a warm-up, per
chunk and per emitted action (chunk latency / ``n_action_steps``). The variants are timed
together, round robin (one call of each in turn, the order rotated every round): a shared
CPU's speed drifts by up to 2x between minutes, and timing each variant minutes apart after
its own rollouts made the speed ratios swing with it (1.7x-3.1x for one pair of
checkpoints). Output JSON, keyed by
variant: ``success_rate, ci95, params, latency_ms {p50, p99}, latency_per_action_ms`` plus
episodes and seeds, and a ``targets`` section (CARP inside DP's interval, >= 10x faster per
chunk than DDPM-100 and >= 2x faster than DDIM-10).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from rosmind.bench import write_result
from rosmind.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINTS = {"diffusion": ROOT / "checkpoints" / "diffusion_pick_place",
                       "carp": ROOT / "checkpoints" / "carp_pick_place"}
# variant name -> (family, sampler setting or None)
VARIANTS = {"diffusion": (("diffusion_ddpm100", ("ddpm", 100)), ("diffusion_ddim10", ("ddim", 10))),
            "carp": (("carp", None),)}


def add_arguments(p):
    p.add_argument("--task", default="pick_place")
    p.add_argument("--policies", default="diffusion,carp", help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--ddpm-episodes", type=int, default=None,
                   help="episodes for DDPM-100 only (it is slow); default --episodes")
    p.add_argument("--seed-start", type=int, default=100_000, help="seeds never used for training")
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--latency-iters", type=int, default=60, help="timed calls per variant (round robin)")
    p.add_argument("--diffusion-checkpoint", type=Path, default=DEFAULT_CHECKPOINTS["diffusion"])
    p.add_argument("--carp-checkpoint", type=Path, default=DEFAULT_CHECKPOINTS["carp"])
    from rosmind.commands.eval import add_perturbation_arguments

    add_perturbation_arguments(p)
    p.add_argument("--json", type=Path, default=None)


def _load(family: str, path: Path, spec):
    from rosmind.checkpoint import load_checkpoint

    if not (path / "manifest.json").exists():
        raise UserError(f"{path}: no {family} checkpoint (manifest.json) there; train one or pass "
                        f"--{family}-checkpoint")
    policy = load_checkpoint(path, spec)
    got = policy.manifest["family"]
    if got != family:
        raise UserError(f"{path}: --{family}-checkpoint holds a {got!r} checkpoint, not {family!r}")
    return policy


def run_variant(policy, name: str, make_sim, seeds: list[int], n_envs: int) -> dict:
    """Success over ``seeds`` and the size of one configured policy."""
    from rosmind.sim.evaluate import evaluate

    t0 = time.perf_counter()
    res = evaluate(make_sim, policy, seeds, n_envs=n_envs, progress=True).to_dict()
    eval_s = time.perf_counter() - t0
    out = {"success_rate": res["success_rate"], "ci95": res["ci95"], "episodes": res["episodes"],
           "successes": res["successes"], "seeds": res["seeds"],
           "params": int(sum(p.numel() for p in policy.parameters())),
           "n_action_steps": policy.config.n_action_steps, "eval_wall_s": round(eval_s, 1)}
    print(f"{name:>18}: success {res['successes']}/{res['episodes']} = {res['success_rate']:.3f} "
          f"(95% CI {res['ci95'][0]:.3f}-{res['ci95'][1]:.3f}); {out['params']:,} params", flush=True)
    return out


def round_robin_latency(policies: dict, iters: int, warmup: int = 3) -> dict[str, list[float]]:
    """Batch-1 ``infer`` seconds per named policy, ``iters`` each, timed in turn (the order
    rotated every round) so that drift of the machine's speed reaches all of them alike."""
    from rosmind.bench.inference import example_obs
    from rosmind.policy import reseed

    obs = {n: example_obs(p, p.config.robot) for n, p in policies.items()}
    for n, p in policies.items():
        reseed(p)
        for _ in range(warmup):
            p.infer(obs[n])
    names = list(policies)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(iters):
        r = i % len(names)
        for n in names[r:] + names[:r]:
            t0 = time.perf_counter()
            policies[n].infer(obs[n])
            times[n].append(time.perf_counter() - t0)
    return times


def targets(results: dict) -> dict:
    """CARP vs DP checks (only those whose variants ran)."""
    out: dict = {}
    carp = results.get("carp")
    if carp is None:
        return out
    for dp in ("diffusion_ddim10", "diffusion_ddpm100"):
        if dp in results:
            lo, hi = results[dp]["ci95"]
            out[f"carp_success_in_{dp}_ci95"] = bool(lo <= carp["success_rate"] <= hi)
            out[f"chunk_speedup_vs_{dp}"] = results[dp]["latency_ms"]["p50"] / carp["latency_ms"]["p50"]
    if "chunk_speedup_vs_diffusion_ddpm100" in out:
        out["meets_10x_vs_ddpm100"] = out["chunk_speedup_vs_diffusion_ddpm100"] >= 10
    if "chunk_speedup_vs_diffusion_ddim10" in out:
        out["meets_2x_vs_ddim10"] = out["chunk_speedup_vs_diffusion_ddim10"] >= 2
    return out


def run(args) -> int:
    import torch

    from rosmind.commands.eval import perturbations
    from rosmind.registry import TASKS
    from rosmind.sim.perturb import perturbed_sim_factory
    from rosmind.spec import load_spec
    from rosmind.stats import latency_summary

    fams = [f.strip() for f in args.policies.split(",") if f.strip()]
    unknown = [f for f in fams if f not in VARIANTS]
    if unknown or not fams:
        raise UserError(f"--policies: unknown family {unknown or args.policies!r}; known: {', '.join(VARIANTS)}")
    if args.episodes < 1 or (args.ddpm_episodes is not None and args.ddpm_episodes < 1):
        raise UserError("--episodes and --ddpm-episodes must be >= 1")
    robot = TASKS.get(args.task).meta["robot"]
    spec = load_spec(robot)
    options, noise = perturbations(args, spec, args.task)
    make_sim = perturbed_sim_factory(robot, args.task, options, noise)
    ckpts = {"diffusion": args.diffusion_checkpoint, "carp": args.carp_checkpoint}
    # One instance per variant (fail before any long rollout), so all can be timed together.
    policies = {name: (fam, _load(fam, ckpts[fam], spec), sampler) for fam in fams for name, sampler in VARIANTS[fam]}
    results: dict = {}
    for name, (fam, policy, sampler) in policies.items():
        if sampler is not None:
            policy.set_sampler(*sampler)
        n = args.ddpm_episodes if (args.ddpm_episodes and name == "diffusion_ddpm100") else args.episodes
        seeds = list(range(args.seed_start, args.seed_start + n))
        results[name] = run_variant(policy, name, make_sim, seeds, args.n_envs)
        results[name]["checkpoint"] = str(ckpts[fam])
    times = round_robin_latency({name: p for name, (_, p, _) in policies.items()}, args.latency_iters)
    for name, res in results.items():
        lat, n_act = latency_summary(times[name]), res["n_action_steps"]
        res["latency_ms"] = {"p50": lat["p50"], "p99": lat["p99"]}
        res["latency_per_action_ms"] = {"p50": lat["p50"] / n_act, "p99": lat["p99"] / n_act}
        print(f"{name:>18}: chunk p50 {lat['p50']:.2f} ms p99 {lat['p99']:.2f} ms "
              f"({lat['n']} calls, round robin)")
    out = {"task": args.task, "task_options": list(args.task_option), "obs_noise": list(args.obs_noise), **results, "targets": targets(results),
           "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    for k, v in out["targets"].items():
        print(f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}")
    if args.json:
        write_result(args.json, out)
    return 0

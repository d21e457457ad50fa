"""``rosmind eval --checkpoint DIR --task pick_place --episodes N [--ros] [--json OUT] [--video OUT.mp4]``

Direct mode runs the sim in-process (vectorized when the policy batches); ``--ros`` runs the
same seeds through robot_node + policy_node + safety_node in lockstep. Both report the same
JSON: success_rate, ci95 (Wilson), episodes, episode_lengths, final_error_m (per episode, the
task's final error), latency_ms {p50, p99} (without warm-up calls), and the perturbations.

Perturbations, repeatable flags: ``--task-option cube_mass=0.3`` (any field of the task's
config) and ``--obs-noise joint_pos.arm=0.005 --obs-noise joint_pos.gripper=0.001`` (Gaussian
noise on what the policy reads, seeded per episode; selectors in ``rosmind.sim.perturb``).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rosmind.bench import write_result
from rosmind.errors import UserError

LAUNCH = Path(__file__).resolve().parents[2] / "launch" / "sim_pick_place.launch.yaml"


def add_arguments(p):
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="checkpoint folder (model.safetensors + manifest.json)")
    src.add_argument("--policy", help="registry name of a policy built from its defaults (e.g. expert)")
    p.add_argument("--task", default="pick_place")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed-start", type=int, default=100_000, help="seeds never used for training")
    p.add_argument("--ros", action="store_true", help="through the ROS 2 graph (lockstep unless --mode)")
    p.add_argument("--mode", choices=["lockstep", "realtime"], default="lockstep",
                   help="--ros: lockstep (deterministic) or realtime (the wall clock at the control rate)")
    p.add_argument("--n-envs", type=int, default=8, help="direct mode: envs stepped together")
    p.add_argument("--sampler", choices=["ddim", "ddpm"], help="diffusion: override the sampler")
    p.add_argument("--steps", type=int, help="diffusion: override the number of inference steps")
    p.add_argument("--samples", type=int, help="diffusion: override n_samples (chunks drawn per plan, medoid executed)")
    p.add_argument("--sampling", choices=["greedy", "top_k", "expected"], help="carp: override the code sampling")
    p.add_argument("--top-k", type=int, help="carp: override top_k (with top_k sampling)")
    p.add_argument("--anchor", choices=["measured", "command"],
                   help="relative-action policies: override action_anchor (what a chunk is added to)")
    add_perturbation_arguments(p)
    p.add_argument("--n-action-steps", type=int,
                   help="chunk policies, direct mode: execute this many rows of each chunk (default: the checkpoint's)")
    p.add_argument("--temporal-ensemble", type=float, metavar="M",
                   help="chunk policies, direct mode: plan every --replan-every ticks and average the chunks "
                        "covering a tick with weights exp(-M * i) (ACT)")
    p.add_argument("--replan-every", type=int, default=1, help="with --temporal-ensemble (default: %(default)s)")
    p.add_argument("--noise", choices=["stream", "episode"], default="stream",
                   help="sampling noise: one stream per run (default), or seeded per chunk from the "
                        "episode seed and tick, identical in direct and --ros mode")
    p.add_argument("--no-residual", action="store_true",
                   help="a residual (resip) checkpoint: its base alone, from the same checkpoint (--ros: policy_node's "
                        "residual parameter off)")
    p.add_argument("--json", type=Path, help="write the result JSON here")
    p.add_argument("--video", type=Path, help="MP4 of the first episode (scene camera)")


def add_perturbation_arguments(p) -> None:
    p.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the task's config (repeatable), e.g. cube_mass=0.3")
    p.add_argument("--obs-noise", action="append", default=[], metavar="KEY=STD",
                   help="Gaussian observation noise (repeatable): joint_pos, joint_pos.<role>, "
                        "joint_pos.<joint>, ee_pose, object_poses, ... in the key's own units")


def perturbations(args, spec, task: str) -> tuple[dict, object]:
    """(task options, ObservationNoise or None) from ``--task-option``/``--obs-noise``."""
    from rosmind.sim.perturb import ObservationNoise, parse_task_options

    options = parse_task_options(args.task_option, task)
    noise = ObservationNoise.parse(args.obs_noise, spec) if args.obs_noise else None
    return options, noise


def load_policy(args, spec):
    from rosmind.checkpoint import load_checkpoint
    from rosmind.registry import POLICIES

    if args.checkpoint:
        policy = load_checkpoint(args.checkpoint, spec)
        if getattr(args, "no_residual", False):
            policy = policy.base  # run() checked the family
    else:
        entry = POLICIES.get(args.policy)
        policy = entry.factory(entry.config()) if entry.config else entry.factory()
    if args.sampler or args.steps:
        if not hasattr(policy, "set_sampler"):
            raise UserError(f"--sampler/--steps: policy {args.checkpoint or args.policy!r} is not a diffusion policy")
        policy.set_sampler(args.sampler or policy.config.sampler, args.steps or policy.config.num_inference_steps)
    if args.samples is not None:
        if not hasattr(policy, "sample_chunks"):
            raise UserError(f"--samples: policy {args.checkpoint or args.policy!r} is not a diffusion policy")
        if not 1 <= args.samples <= 64:
            raise UserError(f"--samples: chunks drawn per plan, in [1, 64], got {args.samples}")
        policy.config.n_samples = args.samples
    if args.anchor:
        if not getattr(policy.config, "relative_actions", False):
            raise UserError(f"--anchor: policy {args.checkpoint or args.policy!r} has no relative actions")
        policy.config.action_anchor = args.anchor
    if args.sampling or args.top_k is not None:
        if not hasattr(policy, "set_sampling"):
            raise UserError(f"--sampling/--top-k: policy {args.checkpoint or args.policy!r} is not a CARP policy")
        policy.set_sampling(args.sampling or policy.config.sampling, args.top_k)
    return policy


def widen_chunks(policy, n: int | None, name: str) -> None:
    """``--n-action-steps n`` above the policy's own: have it return ``n`` rows a chunk, which
    its horizon must hold (rows from the newest observation on)."""
    pc = getattr(policy, "config", None)
    own = getattr(pc, "n_action_steps", None)
    if not n or own is None or n <= own:
        return
    most = pc.horizon - getattr(pc, "n_obs_steps", 1) + 1
    if n > most:
        raise UserError(f"--n-action-steps {n}: policy {name!r} plans {most} rows from its newest observation "
                        f"(horizon {pc.horizon}, n_obs_steps {getattr(pc, 'n_obs_steps', 1)})")
    pc.n_action_steps = n


def _direct(args, spec) -> dict:
    from rosmind.sim.evaluate import evaluate
    from rosmind.sim.perturb import perturbed_sim_factory

    options, noise = perturbations(args, spec, args.task)
    policy = load_policy(args, spec)
    seeds = list(range(args.seed_start, args.seed_start + args.episodes))
    from rosmind.policies.executors import ChunkExecutorConfig

    widen_chunks(policy, args.n_action_steps, args.checkpoint or args.policy)
    executor = ChunkExecutorConfig(n_action_steps=args.n_action_steps, temporal_ensemble=args.temporal_ensemble,
                                   replan_every=args.replan_every)
    res = evaluate(perturbed_sim_factory(spec.name, args.task, options, noise), policy, seeds,
                   n_envs=args.n_envs, video=args.video, progress=True, noise=args.noise, executor=executor)
    return res.to_dict(mode="direct", noise=args.noise, executor=dataclasses.asdict(executor))


def _ros(args, spec) -> dict:
    from rosmind.sim.cameras import checkpoint_cameras
    from rosmind.stats import wilson_interval

    if (args.sampler or args.steps or args.samples is not None or args.sampling or args.top_k is not None or args.anchor
            or args.n_action_steps or args.temporal_ensemble is not None):
        raise UserError("--sampler/--steps/--samples/--sampling/--top-k/--anchor/--n-action-steps/--temporal-ensemble "
                        "apply to direct mode only")
    perturbations(args, spec, args.task)  # bad options fail here, before a graph starts
    with tempfile.TemporaryDirectory(prefix="rosmind-eval-") as tmp:
        out = Path(tmp) / "results.json"
        cams = checkpoint_cameras(args.checkpoint)
        cmd = [sys.executable, "-m", "rosmind.cli", "launch", str(LAUNCH), f"robot:={spec.name}",
               f"task:={args.task}", f"episodes:={args.episodes}", f"seed:={args.seed_start}",
               f"results:={out}", f"mode:={args.mode}", f"task_options:={','.join(args.task_option)}",
               f"cameras:={'true' if cams else 'false'}", f"camera_names:={','.join(cams)}",
               f"obs_noise:={','.join(args.obs_noise)}", f"noise:={args.noise}",
               f"residual:={'false' if args.no_residual else 'true'}"]
        cmd += [f"checkpoint:={Path(args.checkpoint).resolve()}"] if args.checkpoint else [f"policy:={args.policy}"]
        rc = subprocess.call(cmd, stdout=subprocess.DEVNULL if args.json else None)
        if rc != 0 or not out.exists():
            raise UserError(f"the ROS graph exited with code {rc} before finishing {args.episodes} episodes")
        log = json.loads(out.read_text())
    eps = log["episodes"]
    k, n = sum(bool(e["success"]) for e in eps), len(eps)
    return {"success_rate": k / n if n else 0.0, "ci95": list(wilson_interval(k, n)), "episodes": n,
            "successes": k, "seeds": [e["seed"] for e in eps], "success": [bool(e["success"]) for e in eps],
            "episode_lengths": [e["ticks"] for e in eps],
            "final_error_m": [e.get("final_error") for e in eps],
            # Lockstep round trip robot -> policy_node (inference when a chunk is due) -> safety -> robot.
            "latency_ms": log.get("latency", {}).get("round_trip_ms", {}),
            "no_plan_ticks": log.get("no_plan_ticks", 0), "late_ticks": log.get("late_ticks", 0),
            "mode": "ros", "ros_mode": args.mode, "noise": args.noise}


def run(args) -> int:
    from rosmind.registry import TASKS
    from rosmind.spec import load_spec

    if args.episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {args.episodes}")
    if args.mode != "lockstep" and not args.ros:
        raise UserError("--mode realtime applies to --ros only (direct mode steps as fast as it can)")
    TASKS.get(args.task)
    robot = "panda"
    if args.no_residual and not args.checkpoint:
        raise UserError("--no-residual needs --checkpoint (a resip checkpoint: its base runs alone)")
    if args.checkpoint:
        from rosmind.checkpoint import read_manifest

        manifest = read_manifest(args.checkpoint)
        robot = manifest["robot"]["fingerprint"]["name"]
        if args.no_residual and manifest["family"] != "resip":
            raise UserError(f"--no-residual: {args.checkpoint} is a {manifest['family']!r} checkpoint, not a resip "
                            "one (a base and a residual)")
    spec = load_spec(robot)
    out = _ros(args, spec) if args.ros else _direct(args, spec)
    out.update(task=args.task, checkpoint=args.checkpoint, policy=args.policy, no_residual=args.no_residual,
               task_options=list(args.task_option), obs_noise=list(args.obs_noise))
    lo, hi = out["ci95"]
    lat = out.get("latency_ms") or {}
    print(f"success {out['successes']}/{out['episodes']} = {out['success_rate']:.3f} "
          f"(95% CI {lo:.3f}-{hi:.3f}); inference p50 {lat.get('p50', float('nan')):.2f} ms "
          f"p99 {lat.get('p99', float('nan')):.2f} ms")
    if args.json:
        write_result(args.json, out)
    return 0

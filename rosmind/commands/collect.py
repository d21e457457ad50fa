"""``rosmind collect --task pick_place --episodes N --out data/pick_place.zarr [--workers K]``"""

from __future__ import annotations

import json


def add_arguments(p):
    p.add_argument("--task", default="pick_place")
    p.add_argument("--robot", default="panda")
    p.add_argument("--policy", default="expert", help="the demonstrator (registry name)")
    p.add_argument("--episodes", type=int, required=True)
    p.add_argument("--out", required=True, help="zarr replay buffer; appended to if it exists")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed-start", type=int, default=0)
    p.add_argument("--cameras", default="", help="comma-separated camera names to record (e.g. wrist,scene)")
    p.add_argument("--depth", action="store_true", help="with --cameras: also each camera's depth (uint16 mm)")
    p.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the task's config (repeatable), e.g. distractors=2")
    p.add_argument("--keep-failed", action="store_true", help="store failed episodes too (success=0)")
    p.add_argument("--after-success-ticks", type=int, default=10,
                   help="ticks recorded after the task first succeeds (the expert lets go and backs off)")
    p.add_argument("--action-noise", type=float, default=0.0, metavar="RAD",
                   help="DART: the robot runs the demonstrator's commands plus an Ornstein-Uhlenbeck offset on each "
                        "arm joint with this standard deviation (rad), the clean commands are recorded")
    p.add_argument("--action-noise-tau", type=float, default=1.0, metavar="S",
                   help="with --action-noise: the offset's correlation time (s)")
    p.add_argument("--takeover-from", metavar="CHECKPOINT",
                   help="corrective demonstrations: this checkpoint drives each episode until a tick drawn from "
                        "--takeover-ticks, then the expert takes over; only the expert's part is recorded")
    p.add_argument("--takeover-ticks", default="40,140", metavar="LO,HI",
                   help="with --takeover-from: the takeover tick's range (inclusive, drawn per seed)")


def run(args) -> int:
    from rosmind.registry import POLICIES, TASKS
    from rosmind.sim.collect import CollectConfig, collect
    from rosmind.spec import load_spec

    TASKS.get(args.task)
    POLICIES.get(args.policy)
    spec = load_spec(args.robot)
    cams = tuple(c for c in args.cameras.split(",") if c)
    for c in cams:
        spec.sensor(c)
    from rosmind.sim.perturb import parse_task_options

    options = parse_task_options(args.task_option, args.task)
    takeover = {}
    if args.takeover_from:
        takeover = _takeover_fields(args, spec, cams)
    cfg = CollectConfig(**takeover, task_options=options, task=args.task, robot=args.robot, policy=args.policy, episodes=args.episodes,
                        seed_start=args.seed_start, workers=args.workers, cameras=cams, depth=args.depth,
                        keep_failed=args.keep_failed, after_success_ticks=args.after_success_ticks,
                        action_noise=args.action_noise, action_noise_tau=args.action_noise_tau)
    summary = collect(cfg, args.out)
    print(json.dumps(summary))
    return 0


def _takeover_fields(args, spec, cams: tuple[str, ...]) -> dict:
    """Check ``--takeover-from``'s checkpoint against the robot, the cameras and the expert."""
    from rosmind.checkpoint import read_manifest
    from rosmind.errors import UserError
    from rosmind.sim.cameras import cameras_of

    where = f"--takeover-from {args.takeover_from}"
    manifest = read_manifest(args.takeover_from)
    robot = manifest["config"].get("robot")
    if robot != spec.name:
        raise UserError(f"{where}: a checkpoint for robot {robot!r}, not {spec.name!r}")
    missing = [c for c in cameras_of(manifest["config"].get("obs_keys", ())) if c not in cams]
    if missing:
        raise UserError(f"{where}: it reads camera(s) {missing}; add them to --cameras")
    from rosmind.registry import POLICIES

    entry = POLICIES.get(args.policy)
    expert = entry.factory(entry.config())
    try:
        if not hasattr(getattr(expert, "expert", None), "take_over"):
            raise UserError(f"--takeover-from: the demonstrator {args.policy!r} cannot take over an episode "
                            f"another policy began")
    finally:
        if hasattr(expert, "close"):
            expert.close()
    try:
        lo, hi = (int(t) for t in args.takeover_ticks.split(","))
    except ValueError:
        raise UserError(f"--takeover-ticks: expected LO,HI (two integers), got {args.takeover_ticks!r}") from None
    return {"takeover_from": args.takeover_from, "takeover_ticks": (lo, hi)}

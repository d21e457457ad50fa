"""``rosmind train``: train an imitation policy on a zarr dataset (``rosmind.policies.train``), or
an RL policy in a vectorized sim (``rosmind.policies.rl``, rsl-rl's PPO).

    rosmind train --policy diffusion --dataset data/pp.zarr --out runs/pp [--preset P] [--resume] \\
        [train.steps=2000 policy.horizon=16 ...]
    rosmind train --policy ppo_locomotion --task a1_velocity --out runs/a1_walk [--resume] \\
        [rl.iterations=300 env.num_envs=2048 env.terrain=rough ...]
    rosmind train --policy resip --base checkpoints/diffusion_pick_place --task pick_place \\
        --out runs/resip [rl.iterations=100 env.num_envs=8 ...]

Multi-process (DDP, gloo on CPU)::

    torchrun --nproc_per_node 2 -m rosmind.cli train --policy diffusion ...
"""

from __future__ import annotations

import argparse
import shlex
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", required=True, help="policy family (registry name), e.g. diffusion")
    p.add_argument("--dataset", default=None, help="zarr replay buffer (diffusion_policy layout), for imitation")
    p.add_argument("--task", default=None, help="RL families: the vectorized task, e.g. a1_velocity")
    p.add_argument("--base", default=None, help="resip: the frozen base checkpoint (same as env.base=...)")
    p.add_argument("--out", required=True, help="run folder, e.g. runs/NAME")
    p.add_argument("--preset", default=None, help="named preset from rosmind.policies.presets")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides: train.<field>=<value> or policy.<field>=<value> "
                        "(RL: rl.<field>=<value> or env.<field>=<value>)")


def run(args: argparse.Namespace) -> int:
    from rosmind.errors import UserError
    from rosmind.registry import POLICIES

    if POLICIES.get(args.policy).meta.get("trainer") == "rl":
        from rosmind.policies.rl import train_rl

        if args.task is None or args.dataset is not None or args.preset is not None:
            raise UserError(f"--policy {args.policy} is trained by RL: give --task (and no --dataset or --preset)")
        extra = [f"env.base={args.base}"] if args.base else []
        path = train_rl(args.task, args.out, [*extra, *args.overrides], resume=args.resume, family=args.policy)
        print(f"checkpoint: {path}")
        return 0
    if args.base is not None:
        raise UserError(f"--base: only for residual RL (--policy resip), not {args.policy}")
    if args.dataset is None or args.task is not None:
        raise UserError(f"--policy {args.policy} is trained by imitation: give --dataset (and no --task)")
    from rosmind.policies.train import train

    result = train(args.policy, args.dataset, args.out, preset=args.preset, overrides=args.overrides,
                   resume=args.resume, command=shlex.join(["rosmind", *sys.argv[1:]]))
    import os

    if int(os.environ.get("RANK", 0)) == 0:
        print(f"trained {result.step} steps; checkpoint: {result.checkpoint}")
    return 0

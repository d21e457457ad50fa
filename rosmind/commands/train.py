"""``rosmind train``: train an imitation policy on a zarr dataset (``rosmind.policies.train``).

    rosmind train --policy diffusion --dataset data/pp.zarr --out runs/pp [--preset P] [--resume] \\
        [train.steps=2000 policy.horizon=16 ...]

Multi-process (DDP, gloo on CPU)::

    torchrun --nproc_per_node 2 -m rosmind.cli train --policy diffusion ...
"""

from __future__ import annotations

import argparse
import shlex
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", required=True, help="policy family (registry name), e.g. diffusion")
    p.add_argument("--dataset", required=True, help="zarr replay buffer (diffusion_policy layout)")
    p.add_argument("--out", required=True, help="run folder, e.g. runs/NAME")
    p.add_argument("--preset", default=None, help="named preset from rosmind.policies.presets")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides: train.<field>=<value> or policy.<field>=<value>")


def run(args: argparse.Namespace) -> int:
    from rosmind.policies.train import train

    result = train(args.policy, args.dataset, args.out, preset=args.preset, overrides=args.overrides,
                   resume=args.resume, command=shlex.join(["rosmind", *sys.argv[1:]]))
    import os

    if int(os.environ.get("RANK", 0)) == 0:
        print(f"trained {result.step} steps; checkpoint: {result.checkpoint}")
    return 0

"""One wipe episode, traced: the task's metrics and the true normal force every 2nd tick.

    .venv/bin/python benchmarks/wipe_trace.py CHECKPOINT|expert SEED [N_ACTION_STEPS]

``N_ACTION_STEPS`` overrides how many rows (RDP: ticks) each plan runs. Prints success, ticks,
in-window fraction, force RMSE, max force and path error (mean |x - path_x|, m), then the force.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from rosmind.checkpoint import load_checkpoint
from rosmind.registry import POLICIES
from rosmind.sim.robots import make_sim
from rosmind.sim.rollout import run_episode


def main() -> None:
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    torch.set_num_threads(1)
    which, seed = sys.argv[1], int(sys.argv[2])
    if which == "expert":
        entry = POLICIES.get("wipe_expert")
        policy = entry.factory(entry.config())
    else:
        policy = load_checkpoint(which)
        if len(sys.argv) == 4:
            policy.config.n_action_steps = int(sys.argv[3])
    sim = make_sim("panda", "wipe")
    force: list[float] = []
    try:
        r = run_episode(sim, policy, seed, noise="episode", on_tick=lambda t, o, a: force.append(sim.task.force_now))
        st = sim.task_status()
    finally:
        sim.disconnect()
    keys = ("in_window", "force_rmse", "max_force", "path_error")
    print(which, seed, "success" if r.success else "failure", r.ticks, {k: round(float(st[k]), 3) for k in keys})
    print(" ".join(f"{x:.0f}" for x in np.asarray(force)[::2]))


if __name__ == "__main__":
    main()

"""Per-tick trace of a pick_place checkpoint around the grasp: where its episodes stall.

    .venv/bin/python benchmarks/pick_place_trace.py CHECKPOINT SEED[,SEED...] [--every 3] [--ticks 60]

For each seed (direct mode, the cameras the checkpoint reads rendered on their schedule) it
prints the episode's outcome and the ticks at which the hand first came within 1.5 cm of the
cube, the gripper was first commanded below 3 cm, and the cube was first 2 cm above where it
started; then, from 5 ticks before the hand reached the cube, every ``--every``-th tick of
``--ticks``: hand-cube distance, cube height, finger position and command, the cube's distance
to the target in xy and the hand's height (metres, from the sim's ground truth).
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("seeds", help="comma-separated episode seeds")
    ap.add_argument("--every", type=int, default=3)
    ap.add_argument("--ticks", type=int, default=60)
    args = ap.parse_args()

    from rosmind.checkpoint import load_checkpoint
    from rosmind.sim.evaluate import _seeing
    from rosmind.sim.perturb import perturbed_sim_factory
    from rosmind.sim.rollout import run_episode

    policy = load_checkpoint(args.checkpoint)
    sim = _seeing(perturbed_sim_factory("panda", "pick_place", {}, None), policy)()
    sim.connect()
    try:
        for seed in (int(s) for s in args.seeds.split(",")):
            rows = []

            def hook(tick, obs, action, rows=rows):
                ee, cube, goal = obs["ee_pose"][:3], obs["object_poses"][0][:3], obs["goal_pose"][:3]
                rows.append((tick, np.linalg.norm(ee - cube), cube[2], obs["joint_pos"][7],
                             np.nan if action is None else action[7], np.linalg.norm(cube[:2] - goal[:2]), ee[2]))

            r = run_episode(sim, policy, seed, on_tick=hook)
            t = np.array(rows)

            def first(mask) -> int:
                return int(np.argmax(mask)) if mask.any() else -1

            near, closing, lifted = first(t[:, 1] < 0.015), first(t[:, 4] < 0.03), first(t[:, 2] > t[0, 2] + 0.02)
            print(f"seed {seed}: success={r.success} ticks={r.ticks} final_error={r.final_error:.3f} m; "
                  f"hand at cube @{near}, gripper closing @{closing}, cube lifted @{lifted}")
            start = max(0, near - 5)
            for row in t[start:start + args.ticks:args.every]:
                tick, hand_cube, cube_z, finger, cmd, cube_target, hand_z = row
                print(f"  t={int(tick):3d} hand-cube {hand_cube:.3f}  cube_z {cube_z:.3f}  finger {finger:.4f}  "
                      f"cmd {cmd:.4f}  cube-target {cube_target:.3f}  hand_z {hand_z:.3f}")
    finally:
        sim.disconnect()


if __name__ == "__main__":
    main()

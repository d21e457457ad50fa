"""How much a residual of ResiP's size can add to the peg_insert base: the base alone against
the base plus a scripted, privileged residual, on the same seeds.

    .venv/bin/python benchmarks/resip_headroom.py [--base checkpoints/dp_peg_insert] \
        [--episodes 200] [--seed-start 100000] [--out benchmarks/results/resip_headroom.json]

The scripted residual reads what the learned one cannot (the peg's pose from the sim's
``object_poses``): each tick it asks for a twist of the peg tip's xy error to the hole's axis
(``gain`` of it) and of the hand's tilt off vertical (``level`` of it), in the "ee" residual's
own units (``ResipConfig.residual_space``: 5 mm and 0.01 rad a unit at action_scale 0.1),
clipped to +-``clip`` units: the same channel, the same Jacobian, the same limiter
(``ResidualEnv``), the same per-seed episodes as a learned "ee" residual. It bounds what the channel allows, not what PPO finds in a budget.

Each seed runs once per arm in ``ResidualEnv`` (``--envs`` worker processes, seeds handed out
in order); the report pairs them by seed: successes with Wilson intervals, the seeds only one
arm solved, and the residual's mean |joint move| against the base row's from the measured
joints (radians, arm joints).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from rosmind.stats import wilson_interval


class ScriptedResidual:
    """The privileged P-controller on the peg's tip (see the module doc), in "ee" units."""

    def __init__(self, unit: np.ndarray, n: int, gain: float, level: float, clip: float):
        self.unit, self.n, self.gain, self.level, self.clip = unit, n, gain, level, clip

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        from rosmind.sim.tasks_peg import peg_axis_and_bottom

        peg, hole = obs["object_poses"][0], obs["object_poses"][1]
        axis, tip = peg_axis_and_bottom(peg)
        twist = np.concatenate([self.gain * np.array([hole[0] - tip[0], hole[1] - tip[1], 0.0]),
                                self.level * np.cross(axis, [0.0, 0.0, -1.0])])
        out = np.zeros(self.n)
        out[:6] = np.clip(twist / self.unit, -self.clip, self.clip)
        return out


def run_arm(args, scripted: bool) -> dict:
    from rosmind.policies.resip.env import ResidualEnv, ResidualEnvConfig

    env = ResidualEnv(ResidualEnvConfig(base=str(args.base), task="peg_insert", num_envs=args.envs,
                                        seed=args.seed_start, residual_space="ee"))
    ctl = ScriptedResidual(env.policy.ee_unit, env.num_actions, args.gain, args.level, args.clip) if scripted else None
    wanted = set(range(args.seed_start, args.seed_start + args.episodes))
    outcome: dict[int, bool] = {}
    units, steps = [], []
    t0 = time.perf_counter()
    try:
        env.reset()
        last = np.stack([o["joint_pos"][:env.action_dim] for o in env._obs])
        while not wanted <= outcome.keys():
            mu = np.zeros((env.num_envs, env.num_actions))
            if ctl is not None:
                mu = np.stack([ctl(o) for o in env._obs])
                units.append(float(np.mean([np.abs(env.policy.to_joint(m, o["joint_pos"])[:7]).mean()
                                            for m, o in zip(mu, env._obs, strict=True)])))
            steps.append(float(np.abs(env._base - last)[:, :7].mean()))
            seeds = list(env.vec.seeds)
            _, reward, done, _ = env.step(mu)
            last = np.stack([o["joint_pos"][:env.action_dim] for o in env._obs])
            for i in np.flatnonzero(done):
                if seeds[i] in wanted:
                    outcome[seeds[i]] = bool(reward[i] > 0)
    finally:
        env.close()
    ok = [outcome[s] for s in sorted(wanted)]
    n = sum(ok)
    return {"successes": n, "episodes": len(ok), "success_rate": n / len(ok), "ci95": list(wilson_interval(n, len(ok))),
            "success": ok, "wall_s": round(time.perf_counter() - t0, 1),
            "residual_mean_abs_rad": float(np.mean(units)) if units else 0.0,
            "base_step_mean_abs_rad": float(np.mean(steps))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", type=Path, default=Path("checkpoints/dp_peg_insert"))
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--seed-start", type=int, default=100000)
    ap.add_argument("--envs", type=int, default=8)
    ap.add_argument("--gain", type=float, default=1.0, help="of the tip's xy error, per tick")
    ap.add_argument("--level", type=float, default=0.5, help="of the hand's tilt, per tick")
    ap.add_argument("--clip", type=float, default=3.0, help="residual units (ResidualPolicy.scale)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/resip_headroom.json"))
    args = ap.parse_args(argv)
    base = run_arm(args, scripted=False)
    scripted = run_arm(args, scripted=True)
    seeds = list(range(args.seed_start, args.seed_start + args.episodes))
    report = {"benchmark": "resip_headroom", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "base": str(args.base), "task": "peg_insert", "seeds": [seeds[0], seeds[-1]],
              "scripted_residual": {"gain": args.gain, "level": args.level, "clip_units": args.clip},
              "base_alone": base, "base_plus_scripted_residual": scripted,
              "only_base": [s for s, a, b in zip(seeds, base["success"], scripted["success"], strict=True) if a and not b],
              "only_scripted": [s for s, a, b in zip(seeds, base["success"], scripted["success"], strict=True) if b and not a]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for name, r in (("base alone", base), ("base + scripted residual", scripted)):
        lo, hi = r["ci95"]
        print(f"{name}: {r['successes']}/{r['episodes']} ({lo:.3f}-{hi:.3f}), {r['wall_s']} s")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

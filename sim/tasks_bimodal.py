"""A bimodal task for multimodal policies: reach either of two targets (CARP, sec. 4).

``reach_either`` (Panda): two visual-only spheres hover left (+y) and right (-y) of the
robot's home pose at seeded random spots. Touching *either* with the grasp target (within
``tolerance`` for ``hold_ticks`` ticks) succeeds; ``status()["mode"]`` says which (0 left,
1 right, -1 none yet). Both targets are observed as ``object_poses [2, 7]`` (left first),
so nothing in the observation says which one a demonstration went for.

``ReachEitherExpert(target)`` goes straight for one target; ``collect_reach_either`` records
demonstrations split 50/50 by seed parity (even seeds left, odd right), in the same zarr
layout as ``rosmind collect``, so a unimodal regressor averages the two modes while a
policy that models the action distribution reproduces both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet as p

from rosmind.errors import SpecError
from rosmind.registry import TASKS

from .tasks import Task, _check_positive, _check_range
from .world import pose7

MODES = ("left", "right")


@dataclass
class ReachEitherConfig:
    """Target regions in the Panda base frame (metres); ``y`` is mirrored for the right one."""

    time_limit_s: float = 4.0
    target_x: tuple[float, float] = (0.40, 0.55)
    target_y: tuple[float, float] = (0.15, 0.25)  # left target; the right one at -y
    target_z: tuple[float, float] = (0.20, 0.30)
    tolerance: float = 0.03
    hold_ticks: int = 3

    def __post_init__(self):
        _check_positive(self, "time_limit_s", "tolerance")
        for r in ("target_x", "target_y", "target_z"):
            _check_range(self, r)
        if self.target_y[0] <= self.tolerance:
            raise SpecError(f"ReachEitherConfig.target_y: the left target must stay more than the tolerance "
                            f"({self.tolerance}) left of y=0, got {self.target_y}")
        if self.hold_ticks < 1:
            raise SpecError(f"ReachEitherConfig.hold_ticks: must be >= 1, got {self.hold_ticks}")


@TASKS.register("reach_either", config=ReachEitherConfig, robot="panda")
class ReachEitherTask(Task):
    """Success when the grasp target rests at either target; ``mode`` reports which."""

    robot = "panda"
    config_cls = ReachEitherConfig

    def __init__(self, config: ReachEitherConfig | None = None):
        super().__init__(config)
        self.targets = np.zeros((2, 3))
        self._hold = np.zeros(2, dtype=int)

    def load(self, sim, rng: np.random.Generator) -> None:
        c, cid = self.config, sim.world.cid
        for i, sign in enumerate((1.0, -1.0)):
            x, y, z = rng.uniform(*c.target_x), sign * rng.uniform(*c.target_y), rng.uniform(*c.target_z)
            self.targets[i] = (x, y, z)
            vis = p.createVisualShape(p.GEOM_SPHERE, radius=c.tolerance,
                                      rgbaColor=[0.2, 0.4, 0.9, 0.6] if i == 0 else [0.9, 0.6, 0.1, 0.6],
                                      physicsClientId=cid)
            pos, quat = sim.base_to_world([x, y, z], [0, 0, 0, 1])
            p.createMultiBody(0, -1, vis, pos, quat, physicsClientId=cid)  # drawn, never touched
        self._hold[:] = 0

    def observe(self, sim) -> dict[str, np.ndarray]:
        return {"object_poses": np.stack([pose7(t, [0, 0, 0, 1]) for t in self.targets]),
                "goal_pose": pose7(self.targets.mean(0), [0, 0, 0, 1])}

    def update(self, sim) -> None:
        ee = np.asarray(sim.ee_world_pose()[0])
        ee = np.asarray(sim.world_to_base(ee, [0, 0, 0, 1])[0])
        near = np.linalg.norm(self.targets - ee, axis=1) <= self.config.tolerance
        self._hold = np.where(near, self._hold + 1, 0)

    def status(self, sim) -> dict:
        reached = np.nonzero(self._hold >= self.config.hold_ticks)[0]
        limit = self.config.time_limit_s
        success = len(reached) > 0
        return {"success": success, "done": success or sim.time >= limit - 1e-9, "time_limit": limit,
                "mode": int(reached[0]) if success else -1}


class ReachEitherExpert:
    """``infer(obs) -> {"action": [horizon, 8]}``: straight Cartesian line to ``target``
    (0 left, 1 right) at ``speed`` m/s, gripper pointing down, fingers open."""

    def __init__(self, target: int = 0, horizon: int = 8, n_action_steps: int = 4, speed: float = 0.3):
        from rosmind.policy import PolicyConfig
        from rosmind.sim.experts import PandaKinematics
        from rosmind.spec import load_spec

        if target not in (0, 1):
            raise SpecError(f"ReachEitherExpert.target: 0 (left) or 1 (right), got {target!r}")
        self.target, self.speed = target, speed
        self.spec = load_spec("panda")
        self.config = PolicyConfig(robot="panda", obs_keys=("joint_pos", "ee_pose", "object_poses"),
                                   n_obs_steps=1, horizon=horizon, n_action_steps=n_action_steps)
        self.kin = PandaKinematics(self.spec)

    def reset(self) -> None:
        pass

    def close(self) -> None:
        self.kin.close()

    def infer(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        q = np.asarray(obs["joint_pos"])[-1]
        pos = np.asarray(obs["ee_pose"])[-1][:3].copy()
        goal = np.asarray(obs["object_poses"])[-1].reshape(-1, 7)[self.target, :3]
        quat = p.getQuaternionFromEuler([math.pi, 0.0, 0.0])
        stride = self.speed * self.spec.control_period
        rows = np.empty((self.config.horizon, 8))
        seed = q[:7].copy()
        for k in range(self.config.horizon):
            d = goal - pos
            dist = np.linalg.norm(d)
            pos = goal.copy() if dist <= stride else pos + d * (stride / dist)
            seed = self.kin.ik(pos, quat, seed)
            rows[k] = np.append(seed, 0.04)
        return {"action": rows}


def collect_reach_either(out: str | Path, episodes: int, seed_start: int = 0, after_success_ticks: int = 0,
                         paired: bool = False) -> dict:
    """Demonstrations of ``reach_either`` into a zarr replay buffer: even seeds go left, odd
    seeds right; with ``paired`` every seed is demonstrated twice, left then right, so each
    starting observation has both modes in the data (nothing to memorize about which scene
    went which way). ``after_success_ticks`` more ticks are recorded once the target is
    reached (the expert holds still there, so a policy learns to stop). Returns
    ``{"episodes", "kept", "modes": [left, right]}`` (kept = successes)."""
    from rosmind.dataset import ReplayBuffer
    from rosmind.sim.robots import make_sim
    from rosmind.sim.rollout import run_episode

    keys = ("joint_pos", "ee_pose", "object_poses", "goal_pose")
    buf = ReplayBuffer.open(out, "w")
    experts = [ReachEitherExpert(0), ReachEitherExpert(1)]
    modes = [0, 0]
    try:
        with make_sim("panda", "reach_either") as sim:
            if paired:
                runs = [(seed_start + i // 2, i % 2) for i in range(episodes)]
            else:
                runs = [(seed, seed % 2) for seed in range(seed_start, seed_start + episodes)]
            for seed, side in runs:
                rows: dict[str, list] = {k: [] for k in (*keys, "action")}
                last = [None]

                def on_tick(tick, obs, action, rows=rows, last=last):
                    for k in keys:
                        rows[k].append(np.asarray(obs[k]))
                    action = last[0] if action is None else action
                    last[0] = action if action is not None else obs["joint_pos"]
                    rows["action"].append(np.asarray(last[0], dtype=np.float64))

                r = run_episode(sim, experts[side], seed, on_tick=on_tick, after_success_ticks=after_success_ticks)
                if r.success:
                    modes[side] += 1
                    buf.add_episode({k: np.stack(v) for k, v in rows.items()},
                                    {"seed": np.int64(seed), "success": np.uint8(1)})
    finally:
        for e in experts:
            e.close()
    return {"episodes": episodes, "kept": sum(modes), "modes": modes}


def main(argv: list[str] | None = None) -> int:
    """``python -m rosmind.sim.tasks_bimodal --out data/reach_either.zarr --episodes 200``."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m rosmind.sim.tasks_bimodal", description=main.__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--after-success-ticks", type=int, default=10)
    ap.add_argument("--paired", action="store_true", help="every seed twice, left then right")
    a = ap.parse_args(argv)
    if a.episodes < 1 or a.after_success_ticks < 0:
        ap.error("--episodes must be >= 1 and --after-success-ticks >= 0")
    print(json.dumps(collect_reach_either(a.out, a.episodes, a.seed_start, a.after_success_ticks, a.paired)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

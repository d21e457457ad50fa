"""The RL env of ResiP (issue 16): the frozen base policy runs inside the env, the agent only
adds a residual. It has the numpy interface of ``rosmind.sim.locomotion.LocomotionEnv``, so the
one RL entry point (``rosmind.policies.rl``) trains it with rsl-rl's PPO.

Per control tick and env: the base's row for the tick (its chunk executor; one batched base
inference for all envs whose chunk is due, the envs kept on one beat: an env reset mid-beat runs
its first chunk only up to the next beat) ``a_b``; the agent's observation is the residual's
input, ``ResidualPolicy.features(obs, a_b)`` (``policy`` and ``critic`` groups alike; rsl-rl
normalizes it); its action ``r`` is applied as ``a_b + to_joint(r)`` (``ResidualPolicy.to_joint``:
``scale * r`` in joint space, through the Jacobian in "ee" space), held inside the limits by the
policy's ``SetpointLimiter`` as ``ResidualExecutor`` holds it, on ``VecSimEnv``
(worker processes running make_sim's robot and task). Reward: 1 at the tick an episode ends in
success, else 0 (the paper's sparse reward); an episode that runs out of time ends as a failure
(its value is not bootstrapped: ResiP's code treats a truncation as done) unless
``bootstrap_time_outs``; with ``shaping`` > 0 each tick also earns that much of the drop in the
task's error (potential-based shaping). Episodes auto-reset onto the next seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rosmind.errors import SpecError


@dataclass
class ResidualEnvConfig:
    base: str = "checkpoints/diffusion_pick_place"
    task: str = "pick_place"
    num_envs: int = 8
    seed: int = 0
    action_scale: float = 0.1
    residual_keys: tuple[str, ...] = ()
    goal_frame: bool = False  # ResipConfig.goal_frame: the hand's pose in the goal's frame as input
    goal_tilt: bool = False  # ResipConfig.goal_tilt: and the hand's tilt in that frame
    residual_space: str = "joint"  # ResipConfig.residual_space: "joint" or "ee"
    ee_speed: float = 1.0  # ResipConfig.ee_speed / ee_rate: an "ee" unit's size
    ee_rate: float = 2.0
    task_options: dict = field(default_factory=dict)
    bootstrap_time_outs: bool = False  # False: running out of time is a failure (ResiP's code)
    # > 0: potential-based shaping (Ng, Harada and Russell 1999) on the task's own ``error`` (its
    # distance from success, m): each tick adds shaping * (error before - error after). Its sum over
    # an episode is shaping * (first error - final error), so what ends in success is unchanged;
    # a departure from the paper's sparse reward, for a budget ~1000x smaller than its code's.
    shaping: float = 0.0

    def __post_init__(self):
        if self.num_envs < 1:
            raise SpecError(f"ResidualEnvConfig.num_envs: must be >= 1, got {self.num_envs}")
        if not (0.0 < self.action_scale <= 1.0):
            raise SpecError(f"ResidualEnvConfig.action_scale: in (0, 1], got {self.action_scale}")
        if not self.shaping >= 0.0:
            raise SpecError(f"ResidualEnvConfig.shaping: must be >= 0, got {self.shaping}")
        self.residual_keys = tuple(self.residual_keys)


class ResidualEnv:
    def __init__(self, cfg: ResidualEnvConfig):
        from rosmind.policies.executors import ChunkExecutor
        from rosmind.policies.resip import ResidualPolicy, ResipConfig
        from rosmind.policies.resip.policy import resolve_base
        from rosmind.registry import TASKS
        from rosmind.sim.evaluate import _BatchSlot
        from rosmind.sim.rollout import ObsHistory
        from rosmind.sim.vec_env import VecSimEnv
        from rosmind.spec import load_spec

        self.cfg = cfg
        self.policy = ResidualPolicy(ResipConfig(base=cfg.base, action_scale=cfg.action_scale,
                                                 residual_keys=cfg.residual_keys, goal_frame=cfg.goal_frame,
                                                 goal_tilt=cfg.goal_tilt, residual_space=cfg.residual_space,
                                                 ee_speed=cfg.ee_speed, ee_rate=cfg.ee_rate))
        pc = self.policy.config
        if any(k.startswith("camera/") for k in pc.obs_keys):
            raise SpecError("ResidualEnv: the base reads cameras; the vectorized env renders none yet")
        entry = TASKS.get(cfg.task)
        robot = entry.meta.get("robot", pc.robot)
        if robot != pc.robot:
            raise SpecError(f"ResidualEnv: task {cfg.task!r} is for robot {robot!r}; the base {cfg.base} for {pc.robot!r}")
        from rosmind.checkpoint import read_manifest

        ran = read_manifest(resolve_base(cfg.base)).get("training", {}).get("dataset", {}).get("task")
        if ran and ran != cfg.task:
            raise SpecError(f"ResidualEnv: the base {cfg.base} was trained on {ran!r} episodes, not task {cfg.task!r}")
        spec = load_spec(pc.robot)
        self.num_envs = n = cfg.num_envs
        self.num_actions = pc.residual_dim  # what the agent outputs
        self.action_dim = pc.action_dim  # what the robot takes
        limit = getattr(entry.config(**cfg.task_options), "time_limit_s", 10.0) if entry.config else 10.0
        self.max_episode_length = int(round(limit * spec.control_rate_hz))
        self.episode_length = np.zeros(n, dtype=np.int64)
        self.vec = VecSimEnv(pc.robot, cfg.task, n, cfg.task_options)
        first = self.vec.reset(seed=cfg.seed)  # what the task observes, against what the policy reads
        wrong = {k: (list(first[k].shape[1:]) if k in first else "missing", list(pc.obs_shapes.get(k, ())))
                 for k in pc.obs_keys if k not in first or tuple(first[k].shape[1:]) != tuple(pc.obs_shapes.get(k, ()))}
        if wrong:
            self.vec.close()
            raise SpecError(f"ResidualEnv: task {cfg.task!r} does not observe what the base {cfg.base} reads: "
                            + ", ".join(f"{k} is {a} here, {b} for the policy" for k, (a, b) in wrong.items()))
        if cfg.shaping and not np.all(np.isfinite(self.vec.errors)):
            self.vec.close()
            raise SpecError(f"ResidualEnvConfig.shaping: task {cfg.task!r} reports no error to shape with")
        self._hist = [ObsHistory(pc.obs_keys, pc.n_obs_steps) for _ in range(n)]
        self._ex = [ChunkExecutor(_BatchSlot(self.policy.base.config)) for _ in range(n)]
        self._obs: list[dict] = []
        self._base = np.zeros((n, self.action_dim))
        self._planned_at = np.zeros(n, dtype=np.int64)  # the tick of each env's newest plan
        self.limiter = self.policy.limiter()  # batched: the composed command, as ResidualExecutor holds it
        self._tick = 0
        self.finished = {"episodes": 0, "successes": 0}

    def _plan(self, obs: dict[str, np.ndarray]) -> None:
        """Push each env's observation, plan where due (one batched base call), and take each
        env's base row for this tick into ``self._base``."""
        self._obs = [{k: v[i] for k, v in obs.items()} for i in range(self.num_envs)]
        stacked = [h.push(o) for h, o in zip(self._hist, self._obs, strict=True)]
        t = self._tick
        # On the beat (every n_action_steps ticks of the one clock) every env whose plan began
        # off it (after a reset mid-way) plans again with the rest: one batched base call a beat
        # (plus one for the envs reset on a tick), not one per env once resets spread the phases.
        beat = self._ex[0].n_action_steps
        due = [i for i, ex in enumerate(self._ex)
               if ex.wants_inference(t) or t % beat == 0 and self._planned_at[i] % beat]
        if due:
            keys = self.policy.base.config.obs_keys
            chunks = self.policy.base.infer_batch({k: np.stack([stacked[i][k] for i in due]) for k in keys})["action"]
            for j, i in enumerate(due):
                self._ex[i].add_chunk(self._ex[i].reanchor(chunks[j], stacked[i], t), t)
                self._planned_at[i] = t
        for i, ex in enumerate(self._ex):
            self._base[i] = ex.action(t)

    def _features(self) -> dict[str, np.ndarray]:
        x = np.stack([self.policy.features(o, b) for o, b in zip(self._obs, self._base, strict=True)]).astype(np.float32)
        return {"policy": x, "critic": x}

    def reset(self) -> dict[str, np.ndarray]:
        obs = self.vec.reset(seed=self.cfg.seed)
        for h, ex in zip(self._hist, self._ex, strict=True):
            h.reset()
            ex.reset()
        self._tick = 0
        self.episode_length[:] = 0
        self.limiter.reset(obs["joint_pos"][:, :self.action_dim])
        self._plan(obs)
        return self._features()

    def step(self, residual: np.ndarray):
        r = np.asarray(residual, dtype=np.float64).reshape(self.num_envs, self.num_actions)
        # (PPO's sampled residual is never exactly zero: ResidualExecutor's zero case is not needed)
        correction = np.stack([self.policy.to_joint(r[i], o["joint_pos"]) for i, o in enumerate(self._obs)])
        obs, _, done, info = self.vec.step(self.limiter(self._base + correction))
        self.episode_length += 1
        success = info["success"] & done
        reward = success.astype(np.float32)
        if self.cfg.shaping:
            reward += np.float32(self.cfg.shaping) * (info["error_before"] - info["error"]).astype(np.float32)
        time_out = done & ~success & self.cfg.bootstrap_time_outs
        self.finished["episodes"] += int(done.sum())
        self.finished["successes"] += int(success.sum())
        for i in np.flatnonzero(done):
            self._hist[i].reset()
            self._ex[i].reset()
            self.limiter.reset(obs["joint_pos"][i, :self.action_dim], ids=i)
            self.episode_length[i] = 0
        self._tick += 1  # one clock for all envs: a reset executor plans at once, at this tick
        self._plan(obs)
        ended = max(self.finished["episodes"], 1)
        log = {"success_rate": self.finished["successes"] / ended, "episodes": self.finished["episodes"]}
        return self._features(), reward, done, {"time_outs": time_out, "log": log}

    def close(self) -> None:
        self.vec.close()

"""Scripted-expert demonstrations into a zarr replay buffer, in parallel worker processes.

Every episode is a seed; workers run seeds and send back whole episodes, and the parent
appends them in seed order, so a collection is deterministic whatever the worker count.
A resumed run skips the seeds the buffer already holds (kept or failed).

Per tick the buffer stores the observation the expert saw and the command it sent::

    data/joint_pos [N, 8]  data/joint_vel [N, 8]  data/ee_pose [N, 7]  data/wrench [N, 6]
    data/object_poses [N, 1, 7]  data/goal_pose [N, 7]  data/action [N, 8]
    data/camera/<name>/rgb [N, H, W, 3] uint8   (with --cameras; each camera at its own rate,
                                                 its newest frame held between renders)
    data/camera/<name>/depth [N, H, W] uint16 mm  (with --depth; 0 = no return)
    meta/episode_ends, meta/episode_seed, meta/episode_success

With ``takeover_from`` (``--takeover-from CHECKPOINT``) a learner drives each episode first and
the expert takes over from where it left (corrective demonstrations); the root attribute
``takeovers`` maps each such seed to ``[checkpoint, tick]``. With ``action_noise``
(``--action-noise``) the robot runs noisy commands and the clean ones are recorded (DART); the
root attribute ``action_noise`` maps each such seed to ``[sigma, tau]``. Either kind of episode
can be added to any buffer (DAgger and DART aggregate data): each seed says how it was made.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rosmind.dataset import ReplayBuffer
from rosmind.errors import SpecError

STATE_KEYS = ("joint_pos", "joint_vel", "ee_pose", "wrench", "object_poses", "goal_pose")
FAILED_ATTR = "failed_seeds"
TASK_ATTR = "task"  # the task (and robot) the episodes ran: a policy trained on them names it
OPTIONS_ATTR = "task_options"
TAKEOVER_ATTR = "takeovers"
NOISE_ATTR = "action_noise"  # seed -> [sigma rad, tau s] of the DART noise it ran with


@dataclass
class CollectConfig:
    task: str = "pick_place"
    robot: str = "panda"
    policy: str = "expert"
    episodes: int = 100
    seed_start: int = 0
    workers: int = 1
    cameras: tuple[str, ...] = ()
    depth: bool = False
    task_options: dict = field(default_factory=dict)  # task config overrides, e.g. image randomization
    keep_failed: bool = False
    # Ticks recorded after the task first succeeds: the expert lets go and backs off. Without
    # them a pick-and-place demo ends on the tick the gripper opens, the release is ~3 of
    # ~127 ticks, and cloned policies hover above the target instead of letting go.
    after_success_ticks: int = 10
    # Corrective demonstrations: a learner (checkpoint folder) drives each episode until a tick
    # drawn per seed from ``takeover_ticks`` (inclusive), then the expert takes over from the
    # state it left; only the expert's part is recorded. Episodes that end first are skipped.
    # The task's time limit is extended by the latest takeover tick (the expert's part gets the
    # whole of it); buffers record the options given here.
    takeover_from: str | None = None
    takeover_ticks: tuple[int, int] = (40, 140)
    # DART: the robot is sent the expert's commands plus ``ActionNoise(action_noise, action_noise_tau)``
    # while the clean commands are recorded, so the demonstrations visit the states a cloned
    # policy drifts into and show the way back.
    action_noise: float = 0.0
    action_noise_tau: float = 1.0

    def __post_init__(self):
        if self.episodes < 1:
            raise SpecError(f"collect: --episodes must be >= 1, got {self.episodes}")
        if self.workers < 1:
            raise SpecError(f"collect: --workers must be >= 1, got {self.workers}")
        if self.depth and not self.cameras:
            raise SpecError("collect: --depth needs --cameras")
        if self.after_success_ticks < 0:
            raise SpecError(f"collect: --after-success-ticks must be >= 0, got {self.after_success_ticks}")
        lo, hi = (int(t) for t in self.takeover_ticks)
        if not 1 <= lo <= hi:
            raise SpecError(f"collect: --takeover-ticks must be LO,HI with 1 <= LO <= HI, got {lo},{hi}")
        self.takeover_ticks = (lo, hi)
        if not (math.isfinite(self.action_noise) and self.action_noise >= 0):
            raise SpecError(f"collect: --action-noise must be a finite number >= 0 (rad), got {self.action_noise!r}")
        if not (math.isfinite(self.action_noise_tau) and self.action_noise_tau > 0):
            raise SpecError(f"collect: --action-noise-tau must be > 0 (s), got {self.action_noise_tau!r}")

    def takeover_tick(self, seed: int) -> int | None:
        """The tick at which the expert takes over episode ``seed`` (None: the expert drives it all)."""
        if self.takeover_from is None:
            return None
        return int(np.random.default_rng([seed, 0x7A4E]).integers(self.takeover_ticks[0], self.takeover_ticks[1] + 1))


class ActionNoise:
    """DART's noise (Laskey et al., "DART: Noise Injection for Robust Imitation Learning", CoRL
    2017) on a demonstrator's joint commands: an Ornstein-Uhlenbeck offset per arm (or leg) joint,
    stationary standard deviation ``sigma`` rad and correlation time ``tau`` s, one step per
    control tick, drawn from ``seed`` alone (the same episode on any worker). Gripper joints are
    left alone. ``noise(action) -> action + offset``."""

    def __init__(self, spec, sigma: float, tau: float, seed: int):
        self.mask = np.array([j.role != "gripper" for j in spec.joints], dtype=np.float64)
        self.decay = math.exp(-spec.control_period / tau)
        self.scale = sigma * math.sqrt(1.0 - self.decay ** 2)
        self.rng = np.random.default_rng([seed, 0xDA27])
        self.offset = np.zeros(spec.dof)

    def __call__(self, action: np.ndarray) -> np.ndarray:
        self.offset = self.decay * self.offset + self.scale * self.rng.standard_normal(len(self.offset))
        return np.asarray(action, dtype=np.float64) + self.mask * self.offset


@dataclass
class Episode:
    seed: int
    success: bool
    data: dict[str, np.ndarray] = field(default_factory=dict)
    takeover_tick: int | None = None


class _Worker:
    """Holds one sim and one policy per process (built on first use)."""

    sim = None
    policy = None
    learner = None
    key = None  # what the cached sim and policies were built for

    @classmethod
    def run(cls, cfg: CollectConfig, seed: int) -> Episode:
        from rosmind.registry import POLICIES
        from rosmind.sim.cameras import depth_key, rgb_key, with_cameras
        from rosmind.sim.robots import make_sim
        from rosmind.sim.rollout import run_episode

        key = (cfg.robot, cfg.task, cfg.policy, repr(sorted(cfg.task_options.items())), cfg.cameras, cfg.depth,
               cfg.takeover_from, cfg.takeover_ticks)  # the latest takeover tick sets the sim's time limit
        if cls.sim is None or cls.key != key:
            if cls.sim is not None:
                cls.sim.disconnect()
            cls.key = key
            options = dict(cfg.task_options)
            if cfg.takeover_from is not None:  # the expert's part gets the task's whole time limit
                from rosmind.registry import TASKS
                from rosmind.spec import load_spec

                limit = options.get("time_limit_s", TASKS.get(cfg.task).config().time_limit_s)
                options["time_limit_s"] = limit + cfg.takeover_ticks[1] * load_spec(cfg.robot).control_period
            cls.sim = with_cameras(make_sim(cfg.robot, cfg.task, **options), cfg.cameras, cfg.depth)
            cls.sim.connect()
            entry = POLICIES.get(cfg.policy)
            cls.policy = entry.factory(entry.config())
            if cfg.takeover_from is not None:
                from rosmind.checkpoint import load_checkpoint

                cls.learner = load_checkpoint(cfg.takeover_from)
                if cfg.workers > 1:  # one torch thread a worker: more only spin against each other
                    import torch

                    torch.set_num_threads(1)
        rows: dict[str, list] = {k: [] for k in (*STATE_KEYS, "action")}
        cam_keys = [rgb_key(c) for c in cfg.cameras] + [depth_key(c) for c in cfg.cameras if cfg.depth]
        for k in cam_keys:
            rows[k] = []
        last = [None]
        handover = cfg.takeover_tick(seed)

        def on_tick(tick, obs, action):
            if handover is not None and tick < handover:  # the learner's part: not a demonstration
                last[0] = action if action is not None else last[0]
                return
            for k in (*STATE_KEYS, *(k for k in obs if k.startswith("tactile/"))):
                if k in obs:  # a task without objects (wipe) has no object_poses
                    rows.setdefault(k, []).append(np.asarray(obs[k]))
            if action is None:  # held: the setpoint did not change
                action = last[0] if last[0] is not None else obs["joint_pos"]
            last[0] = action
            rows["action"].append(np.asarray(action, dtype=np.float64))
            for k in cam_keys:
                rows[k].append(depth_mm(obs[k]) if k.endswith("/depth") else obs[k])

        perturb = ActionNoise(cls.sim.spec, cfg.action_noise, cfg.action_noise_tau, seed) if cfg.action_noise else None
        if handover is None:
            res = run_episode(cls.sim, cls.policy, seed, on_tick=on_tick, after_success_ticks=cfg.after_success_ticks,
                              perturb=perturb)
        else:
            res = run_episode(cls.sim, cls.learner, seed, on_tick=on_tick, after_success_ticks=cfg.after_success_ticks,
                              takeover=(handover, cls.policy), noise="episode",  # seeded: any worker count
                              perturb=perturb)
        data = {key: np.stack(v) for key, v in rows.items() if v}
        return Episode(seed=seed, success=res.success, data=data, takeover_tick=handover)


def depth_mm(depth_m: np.ndarray) -> np.ndarray:
    """Metres -> uint16 millimetres (RealSense's Z16 unit), 0 where there is no finite return."""
    d = np.nan_to_num(np.asarray(depth_m, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.rint(d * 1000.0), 0, 65535).astype(np.uint16)


def _run(args):
    return _Worker.run(*args)


def _episodes(cfg: CollectConfig, seeds: list[int]) -> Iterator[Episode]:
    if cfg.workers == 1:
        for s in seeds:
            yield _Worker.run(cfg, s)
        return
    # spawn: PyBullet clients and torch threads do not survive fork cleanly.
    with ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) as pool:
        yield from pool.map(_run, [(cfg, s) for s in seeds])


def collect(cfg: CollectConfig, out: str | Path, progress: bool = True) -> dict:
    """Run the seeds ``seed_start .. seed_start+episodes-1`` that ``out`` does not have yet.
    Returns a summary: {"new", "kept", "failed", "skipped", "episodes_in_buffer", "success_rate"}."""
    from tqdm import tqdm

    buf = ReplayBuffer.open(out, "a")
    have = set()
    if buf.n_episodes and "seed" in buf.meta_fields():
        have |= {int(s) for s in buf.episode_meta("seed")}
    options = json.loads(json.dumps(cfg.task_options))  # tuples -> lists: as stored
    if buf.n_episodes and buf.root.attrs.get(OPTIONS_ATTR, {}) != options:
        raise SpecError(f"{out}: its episodes were collected with task options "
                        f"{buf.root.attrs.get(OPTIONS_ATTR, {})}, not {options}; collect into a new buffer")
    buf.root.attrs[OPTIONS_ATTR] = options
    task = {"task": cfg.task, "robot": cfg.robot}
    if buf.n_episodes and buf.root.attrs.get(TASK_ATTR, task) != task:
        raise SpecError(f"{out}: its episodes ran {buf.root.attrs[TASK_ATTR]}, not {task}; collect into a new buffer")
    buf.root.attrs[TASK_ATTR] = task
    noise = [cfg.action_noise, cfg.action_noise_tau] if cfg.action_noise else None
    noisy = buf.root.attrs.get(NOISE_ATTR) or {}
    if not isinstance(noisy, dict):
        raise SpecError(f"{out}: root attribute {NOISE_ATTR!r} is {noisy!r}, expected a map of seed -> [sigma, tau] "
                        "(buffers from before 2026-12-07 kept one pair; collect into a new buffer)")
    failed_before = [int(s) for s in buf.root.attrs.get(FAILED_ATTR, [])]
    have |= set(failed_before)
    wanted = [cfg.seed_start + i for i in range(cfg.episodes)]
    seeds = [s for s in wanted if s not in have]
    kept = failed = 0
    failed_now = list(failed_before)
    bar = tqdm(total=len(seeds), desc=f"collect {cfg.task}", unit="ep", disable=not progress)
    takeovers = dict(buf.root.attrs.get(TAKEOVER_ATTR, {}))
    early = 0
    for ep in _episodes(cfg, seeds):
        if not ep.data:  # a takeover episode that ended before the expert took over
            early += 1
            failed_now.append(ep.seed)
            buf.root.attrs[FAILED_ATTR] = failed_now
            bar.update(1)
            continue
        if ep.success or cfg.keep_failed:
            buf.add_episode(ep.data, {"seed": np.int64(ep.seed), "success": np.uint8(ep.success)})
            kept += 1
            if ep.takeover_tick is not None:  # seed -> (learner, tick): which states these came from
                takeovers[str(ep.seed)] = [cfg.takeover_from, ep.takeover_tick]
                buf.root.attrs[TAKEOVER_ATTR] = takeovers
            if noise is not None:
                noisy[str(ep.seed)] = noise
                buf.root.attrs[NOISE_ATTR] = noisy
        if not ep.success:
            failed += 1
            if not cfg.keep_failed:
                failed_now.append(ep.seed)
                buf.root.attrs[FAILED_ATTR] = failed_now
        bar.update(1)
        bar.set_postfix(kept=kept, failed=failed)
    bar.close()
    n_new = len(seeds)
    return {"new": n_new, "kept": kept, "failed": failed, "skipped": len(wanted) - n_new, "ended_before_takeover": early,
            "episodes_in_buffer": buf.n_episodes,
            "success_rate": (n_new - early - failed) / (n_new - early) if n_new > early else None}

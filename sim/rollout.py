"""Direct, in-process episodes: a sim robot, a policy, and the chunk executor between them.

    result = run_episode(make_sim("panda", "pick_place"), POLICIES.get("expert").factory(cfg), seed=0)

Each tick: ``read()`` -> observation history ``{key: [To, ...]}`` (oldest first, the first
observation repeated at the episode start) -> ``ChunkExecutor.step(obs, tick)`` -> ``write`` ->
``step`` -> stop when ``task_status()["done"]`` (or after ``max_ticks``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rosmind.policies.executors import ChunkExecutor, make_executor
from rosmind.policy import input_keys
from rosmind.robot import Observation, SimRobot


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    ticks: int
    sim_time: float
    wall_time: float
    final_error: float | None = None  # task_status()["error"] at the end, where the task has one


class ObsHistory:
    """The last ``n`` observations of ``keys``, stacked oldest first: ``{key: [n, ...]}``."""

    def __init__(self, keys: tuple[str, ...], n: int):
        self.keys, self.n = tuple(keys), n
        self._buf: deque[Observation] = deque(maxlen=n)

    def reset(self) -> None:
        self._buf.clear()

    def push(self, obs: Observation) -> dict[str, np.ndarray]:
        missing = [k for k in self.keys if k not in obs]
        if missing:
            from rosmind.errors import SpecError

            raise SpecError(f"the policy needs observation key(s) {missing}; the robot gives {sorted(obs)}")
        while len(self._buf) < self.n - 1:
            self._buf.append(obs)
        self._buf.append(obs)
        return {k: np.stack([np.asarray(o[k]) for o in self._buf]) for k in self.keys}


def run_episode(sim: SimRobot, policy, seed: int, max_ticks: int | None = None,
                on_tick: Callable[[int, Observation, np.ndarray | None], None] | None = None,
                executor: ChunkExecutor | None = None, after_success_ticks: int = 0,
                noise: str = "stream", takeover: tuple[int, object] | None = None,
                perturb: Callable[[np.ndarray], np.ndarray] | None = None) -> EpisodeResult:
    """Run one seeded episode; ``on_tick(tick, obs, action)`` sees every tick (e.g. a recorder).

    When the executor has no row for a tick (it never happens synchronously) the last
    setpoint is held. ``after_success_ticks``: keep running this many ticks once the task
    succeeds (demonstrations then show what follows the success, e.g. letting go and
    retreating, instead of ending on its first tick); the result is still a success.
    ``noise="episode"``: each chunk's sampling noise is seeded from ``seed`` and its tick
    (``rosmind.policy.infer_seeded``), as policy_node does with ``noise:=episode``.
    ``takeover=(k, expert)``: from tick ``k`` on ``expert`` drives instead, continuing from the
    state ``policy`` left and from its last commands (``expert.take_over``): corrective
    demonstrations from the states a learner reaches (DAgger's idea, with the expert in control).
    ``perturb(action) -> action``: what the robot is sent instead of each command; ``on_tick``
    still sees the policy's own command (DART: the noisy states a learner will drift into, labelled
    with the expert's correction; see ``ActionNoise``).
    """
    ex = executor or make_executor(policy)
    cfg = policy.config
    hist = ObsHistory(input_keys(cfg), cfg.n_obs_steps)
    t0 = time.perf_counter()
    obs = sim.reset(seed)
    ex.reset(noise_seed=seed if noise == "episode" else None)
    tick = 0
    succeeded_at: int | None = None
    sent: list[np.ndarray] = []  # the last two commands written
    while True:
        if takeover is not None and tick == takeover[0]:
            expert = takeover[1]
            ex = make_executor(expert)
            ex.reset()  # resets the expert too: take_over comes after
            newest = {k: np.asarray(v) for k, v in obs.items()}
            expert.take_over(newest, sent[-1] if sent else None, sent[-1] - sent[-2] if len(sent) > 1 else None)
            hist = ObsHistory(input_keys(expert.config), expert.config.n_obs_steps)
        action = ex.step(hist.push(obs), tick)
        if action is None and perturb is not None and sent:  # a held setpoint drifts with the noise too
            action = sent[-1]
        if action is not None:
            sim.write(action if perturb is None else perturb(action))
            sent = [*sent[-1:], np.asarray(action, dtype=np.float64)]
        if on_tick is not None:
            on_tick(tick, obs, action)
        sim.step()
        tick += 1
        status = sim.task_status()
        if succeeded_at is None and status["success"]:
            succeeded_at = tick
        if succeeded_at is not None:
            if tick - succeeded_at >= after_success_ticks:
                break
        elif status["done"] or (max_ticks is not None and tick >= max_ticks):
            break
        obs = sim.read()
    return EpisodeResult(seed=seed, success=succeeded_at is not None, ticks=tick, sim_time=sim.time,
                         wall_time=time.perf_counter() - t0, final_error=status.get("error"))

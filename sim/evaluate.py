"""Direct (in-process) evaluation: one protocol for every policy family.

``evaluate`` runs seeded episodes of a sim task with a policy and reports what ``rosmind
eval`` writes: success rate with a Wilson 95% interval, episode lengths and inference
latency. With ``n_envs > 1`` and a policy that has ``infer_batch`` the envs step together
and share one batched inference per planning tick (vectorized); otherwise episodes run one
after another.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rosmind.policies.executors import ChunkExecutor, ChunkExecutorConfig, make_executor
from rosmind.sim.rollout import ObsHistory, run_episode
from rosmind.stats import latency_summary, wilson_interval


@dataclass
class EvalResult:
    seeds: list[int]
    successes: list[bool]
    lengths: list[int]
    latencies_s: list[float]
    final_errors: list[float | None] = field(default_factory=list)
    warmup_calls: int = 0

    def to_dict(self, **extra) -> dict:
        n, k = len(self.successes), int(sum(self.successes))
        lo, hi = wilson_interval(k, n)
        return {"success_rate": k / n if n else 0.0, "ci95": [lo, hi], "episodes": n,
                "successes": k, "seeds": self.seeds, "success": [bool(s) for s in self.successes],
                "episode_lengths": self.lengths, "final_error_m": self.final_errors,
                "latency_ms": {**latency_summary(self.latencies_s), "warmup_excluded": self.warmup_calls},
                **extra}


WARMUP_CALLS = 2


class _LatencySink:
    """Inference times, less the first WARMUP_CALLS at each batch size (graph tracing and
    optimization, not inference)."""

    def __init__(self, res: EvalResult):
        self.res = res
        self._seen: dict[int, int] = {}

    def add(self, batch: int, seconds: float) -> None:
        n = self._seen.get(batch, 0)
        self._seen[batch] = n + 1
        if n >= WARMUP_CALLS:
            self.res.latencies_s.append(seconds)
        else:
            self.res.warmup_calls += 1


class _Timed:
    """Wraps a policy to time every inference call (wrap, don't subclass)."""

    def __init__(self, policy, sink: _LatencySink):
        self.policy, self.config, self._sink = policy, policy.config, sink

    def reset(self):
        self.policy.reset()

    def reseed(self, seed=None):
        from rosmind.policy import reseed

        reseed(self.policy, seed)

    def infer(self, obs):
        t0 = time.perf_counter()
        out = self.policy.infer(obs)
        self._sink.add(1, time.perf_counter() - t0)
        return out

    def __getattr__(self, name):  # the rest of the policy (a slow-fast policy's decoder, ...)
        if name == "policy":
            raise AttributeError(name)
        return getattr(self.policy, name)


class VideoWriter:
    """MP4 (mp4v) of a camera's RGB frames."""

    def __init__(self, path: str | Path, fps: float):
        self.path, self.fps, self._w = Path(path), fps, None

    def add(self, rgb: np.ndarray) -> None:
        import cv2

        if self._w is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = rgb.shape[:2]
            self._w = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._w.isOpened():
                raise OSError(f"cannot open {self.path} for MP4 writing")
        self._w.write(np.ascontiguousarray(rgb[..., ::-1]))

    def close(self) -> None:
        if self._w is not None:
            self._w.release()


def evaluate(make_sim: Callable, policy, seeds: list[int], n_envs: int = 1,
             video: str | Path | None = None, video_camera: str = "scene",
             progress: bool = False, noise: str = "stream",
             executor: ChunkExecutorConfig | None = None) -> EvalResult:
    """Run one episode per seed. ``make_sim()`` builds a fresh SimRobot. ``executor``: how
    chunks are executed (``n_action_steps``, temporal ensembling), default the policy's own.

    ``noise="episode"``: every chunk's sampling noise comes from its episode's seed and tick
    (``rosmind.policy.infer_seeded``), so results do not depend on ``n_envs`` or on the order of
    the seeds, and match policy_node's ``noise:=episode``; batched envs then infer one by one
    (each with its own generator state), and share only the stepping loop.
    """
    from rosmind.policy import NOISE_MODES

    if noise not in NOISE_MODES:
        raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}")
    from tqdm import tqdm

    from rosmind.policy import reseed

    reseed(policy)  # the same call gives the same episodes, whatever the policy did before
    make_sim = _seeing(make_sim, policy)
    res = EvalResult([], [], [], [])
    lat = _LatencySink(res)
    bar = tqdm(total=len(seeds), desc="eval", unit="ep", disable=not progress)
    if n_envs > 1 and hasattr(policy, "infer_batch"):
        for i in range(0, len(seeds), n_envs):
            _vector_batch(make_sim, policy, seeds[i:i + n_envs], res, lat, noise, executor)
            bar.update(len(seeds[i:i + n_envs]))
        bar.close()
        if video:
            _record(make_sim, policy, seeds[0], video, video_camera)
        return res
    sim = make_sim()
    sim.connect()
    timed = _Timed(policy, lat)
    try:
        for j, seed in enumerate(seeds):
            writer = None
            if video and j == 0:
                writer = VideoWriter(video, sim.spec.control_rate_hz)
                hook = (lambda w: lambda t, o, a: w.add(sim.render(video_camera)[0]))(writer)
            else:
                hook = None
            r = run_episode(sim, timed, seed, on_tick=hook, noise=noise, executor=make_executor(timed, executor))
            if writer:
                writer.close()
            res.seeds.append(seed)
            res.successes.append(r.success)
            res.lengths.append(r.ticks)
            res.final_errors.append(r.final_error)
            bar.update(1)
    finally:
        sim.disconnect()
        bar.close()
    return res


def _seeing(make_sim: Callable, policy) -> Callable:
    """``make_sim`` whose robots render the cameras the policy reads (and only those), on the
    cameras' own schedule (``sim.cameras``)."""
    from rosmind.sim.cameras import cameras_of, with_cameras

    cams = cameras_of(policy.config.obs_keys)
    return (lambda: with_cameras(make_sim(), cams)) if cams else make_sim


def _record(make_sim, policy, seed, video, camera):
    sim = make_sim()
    sim.connect()
    w = VideoWriter(video, sim.spec.control_rate_hz)
    try:
        run_episode(sim, policy, seed, on_tick=lambda t, o, a: w.add(sim.render(camera)[0]))
    finally:
        w.close()
        sim.disconnect()


class _BatchSlot:
    """Per-env stand-in policy for a ChunkExecutor whose chunks come from a batched call."""

    def __init__(self, config):
        self.config = config

    def reset(self):
        pass


def _vector_batch(make_sim, policy, seeds, res: EvalResult, lat: _LatencySink, noise: str = "stream",
                  executor: ChunkExecutorConfig | None = None) -> None:
    from rosmind.policy import infer_seeded

    cfg = policy.config
    sims = [make_sim() for _ in seeds]
    policy.reset()
    try:
        hists, exs, obs, done, ticks = [], [], [], [], []
        for sim, seed in zip(sims, seeds, strict=True):
            sim.connect()
            obs.append(sim.reset(seed))
            hists.append(ObsHistory(cfg.obs_keys, cfg.n_obs_steps))
            exs.append(ChunkExecutor(_BatchSlot(cfg), executor))
            done.append(False)
            ticks.append(0)
        success = [False] * len(sims)
        errors: list[float | None] = [None] * len(sims)
        tick = 0
        while not all(done):
            live = [i for i in range(len(sims)) if not done[i]]
            stacked = {i: hists[i].push(obs[i]) for i in live}
            want = [i for i in live if exs[i].wants_inference(tick)]
            if want and noise == "episode":
                for i in want:
                    t0 = time.perf_counter()
                    chunk = infer_seeded(policy, stacked[i], seeds[i], tick)["action"]
                    exs[i].add_chunk(exs[i].reanchor(chunk, stacked[i], tick), tick)
                    lat.add(1, time.perf_counter() - t0)
            elif want:
                batch = {k: np.stack([stacked[i][k] for i in want]) for k in cfg.obs_keys}
                t0 = time.perf_counter()
                chunks = policy.infer_batch(batch)["action"]
                lat.add(len(want), time.perf_counter() - t0)
                for j, i in enumerate(want):
                    exs[i].add_chunk(exs[i].reanchor(chunks[j], stacked[i], tick), tick)
            for i in live:
                a = exs[i].action(tick)
                if a is not None:
                    sims[i].write(a)
                sims[i].step()
                st = sims[i].task_status()
                ticks[i] = tick + 1
                if st["done"]:
                    done[i], success[i], errors[i] = True, bool(st["success"]), st.get("error")
                else:
                    obs[i] = sims[i].read()
            tick += 1
        res.seeds += list(seeds)
        res.successes += success
        res.lengths += ticks
        res.final_errors += errors
    finally:
        for s in sims:
            s.disconnect()

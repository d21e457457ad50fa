"""Executors: turn a chunking policy into one action per control tick.

Time is counted in integer control ticks. A chunk inferred from the observation of tick
``k`` has row ``i`` for tick ``k + i`` (row 0 is the command for tick ``k`` itself; see
``rosmind.policy``). Cross-cutting behaviour wraps the policy instead of subclassing it.

``ChunkExecutor`` implements, for every family:

- **receding horizon**: execute ``n_action_steps`` rows of a chunk, then plan again from the
  newest observation (diffusion_policy's execution scheme);
- **temporal ensembling** (ACT, Zhao et al. 2023, sec. 3.3): plan every ``replan_every``
  ticks and average all chunks that cover a tick with weights ``exp(-m * i)``, ``i = 0`` for
  the oldest chunk;
- **latency compensation**: a chunk that arrives ``d`` ticks after its observation is
  indexed by tick, so its first ``d`` rows, whose time has passed, are dropped;
- **prefetch**: in real time, ask for the next chunk ``prefetch`` ticks before the current
  one runs out, so inference latency is hidden instead of stalling the robot.
- **command anchor** (``policy.config.action_anchor == "command"``, relative-action policies):
  ``reanchor`` moves a fresh chunk from the joint reading it was planned from onto the
  setpoint commanded at the tick before (arm/leg joints): the chunk keeps its shape and the
  reading's noise stays out of the commands.

``SlowFastExecutor`` runs a slow-fast policy (RDP, ``policy.fast``): the slow plan (a chunk
latent, from ``policy.infer``) every ``n_action_steps`` ticks, and every tick the fast decoder
(``policy.decoder_step``) with the force observed at that tick (``observe``), so a force change
at tick ``k`` changes the command of tick ``k``. ``make_executor`` picks the right one.

Both take a policy's output with ``add_output(out, obs, obs_tick, now_tick)`` and the tick's
observation with ``observe(obs, tick)`` (a no-op for chunks), so hosts (``run_episode``,
policy_node) need no family-specific code.

Threading: ``request``/``add_chunk``/``add_output`` may be called from an inference worker while
the control thread calls ``observe``/``action``; all state is behind one lock.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass

import numpy as np

from rosmind.errors import SpecError
from rosmind.policy import infer_seeded
from rosmind.spec import load_spec
from rosmind.trajectory import SetpointLimiter


@dataclass
class ChunkExecutorConfig:
    n_action_steps: int | None = None  # None: the policy config's n_action_steps
    temporal_ensemble: float | None = None  # m in exp(-m * i); None disables ensembling
    replan_every: int = 1  # ticks between plans when ensembling
    prefetch: int = 0  # ask for the next chunk this many ticks early (real time)

    def __post_init__(self):
        if self.n_action_steps is not None and self.n_action_steps < 1:
            raise SpecError(f"ChunkExecutorConfig.n_action_steps: must be >= 1, got {self.n_action_steps}")
        if self.temporal_ensemble is not None and self.temporal_ensemble < 0:
            raise SpecError(f"ChunkExecutorConfig.temporal_ensemble: must be >= 0, got {self.temporal_ensemble}")
        if self.replan_every < 1 or self.prefetch < 0:
            raise SpecError("ChunkExecutorConfig: replan_every must be >= 1 and prefetch >= 0, "
                            f"got {self.replan_every} and {self.prefetch}")


class ChunkExecutor:
    """Wraps a policy: ``step(obs, tick) -> action [Da]`` (synchronous), or the split
    ``wants_inference / request / add_chunk / action`` API for an asynchronous worker."""

    def __init__(self, policy, config: ChunkExecutorConfig | None = None):
        self.policy = policy
        self.config = config or ChunkExecutorConfig()
        pc = getattr(policy, "config", None)
        own = getattr(pc, "n_action_steps", None)
        if self.config.n_action_steps and own and self.config.n_action_steps > own:
            # The policy returns only its own n_action_steps rows a chunk: more would silently
            # run as many as it returns (widen the policy's config first: rosmind eval does).
            raise SpecError(f"ChunkExecutorConfig.n_action_steps={self.config.n_action_steps}: the policy "
                            f"returns {own} rows a chunk (its config's n_action_steps)")
        self.n_action_steps = self.config.n_action_steps or own or 1
        self._lock = threading.Lock()
        self._chunks: list[tuple[int, np.ndarray]] = []  # (obs tick, [Ta, Da]), oldest first
        self._pending = False
        self.dropped_rows = 0  # rows that arrived after their tick had passed
        self.noise_seed: int | None = None
        self._tick0: int | None = None
        self._sent: dict[int, np.ndarray] = {}  # tick -> the command returned for it (recent ticks)
        self._anchor_mask = self._command_anchor_mask(pc)

    def reset(self, noise_seed: int | None = None) -> None:
        """A new episode. ``noise_seed`` (the episode's seed): ``step`` reseeds the policy for
        each chunk from it and the episode tick (``rosmind.policy.infer_seeded``)."""
        with self._lock:
            self._chunks.clear()
            self._pending = False
            self.dropped_rows = 0
            self.noise_seed, self._tick0 = noise_seed, None
            self._sent.clear()
        self.policy.reset()

    @staticmethod
    def _command_anchor_mask(pc) -> np.ndarray | None:
        """1 for the joints a command anchor moves (arm/leg roles of the policy's robot)."""
        if getattr(pc, "action_anchor", "measured") != "command":
            return None
        if not getattr(pc, "relative_actions", False):
            raise SpecError(f"{type(pc).__name__}.action_anchor='command' needs relative_actions "
                            "(an absolute chunk has no anchor)")
        from rosmind.spec import load_spec

        return np.array([j.role in ("arm", "leg") for j in load_spec(pc.robot).joints], dtype=np.float64)

    def reanchor(self, chunk: np.ndarray, obs: dict[str, np.ndarray], obs_tick: int) -> np.ndarray:
        """With a command anchor: ``chunk`` (planned from ``obs`` of ``obs_tick``) shifted by
        (command of tick ``obs_tick - 1`` - newest joint_pos) on the anchored joints; else as is.
        The first chunk of an episode has no earlier command and stays on the reading."""
        if self._anchor_mask is None:
            return chunk
        with self._lock:
            last = self._sent.get(obs_tick - 1)
        if last is None:
            return chunk
        measured = np.asarray(obs["joint_pos"], dtype=np.float64).reshape(-1, len(self._anchor_mask))[-1]
        return np.asarray(chunk, dtype=np.float64) + (last - measured) * self._anchor_mask

    @property
    def _interval(self) -> int:
        return self.config.replan_every if self.config.temporal_ensemble is not None else self.n_action_steps

    def wants_inference(self, tick: int) -> bool:
        """True when a new plan should start from the observation of ``tick``."""
        with self._lock:
            if self._pending:
                return False
            if not self._chunks:
                return True
            last_tick, last = self._chunks[-1]
            # A plan may also run out before its interval (short chunk).
            due = last_tick + min(self._interval, len(last)) - self.config.prefetch
            return tick >= due

    def request(self) -> None:
        """Mark an inference as in flight (so ``wants_inference`` stays False until it lands)."""
        with self._lock:
            self._pending = True

    def observe(self, obs: dict[str, np.ndarray], tick: int) -> None:
        """The observation of ``tick`` (chunks are open loop: nothing to do)."""

    def add_output(self, out: dict, obs: dict[str, np.ndarray], obs_tick: int, now_tick: int | None = None) -> None:
        """A policy's output for the observation ``obs`` of ``obs_tick``: its chunk, re-anchored."""
        self.add_chunk(self.reanchor(out["action"], obs, obs_tick), obs_tick, now_tick)

    def add_chunk(self, chunk: np.ndarray, obs_tick: int, now_tick: int | None = None) -> None:
        """Add a chunk planned from the observation of ``obs_tick``; ``now_tick`` (if given)
        is the tick at which it became available, for latency accounting."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or not np.all(np.isfinite(chunk)):
            with self._lock:
                self._pending = False
            raise ValueError(f"policy returned an action chunk of shape {chunk.shape} "
                             f"with non-finite values: expected finite [Ta, Da]")
        with self._lock:
            self._pending = False
            if now_tick is not None:
                self.dropped_rows += max(0, min(now_tick - obs_tick, len(chunk)))
            self._chunks.append((obs_tick, chunk))
            if self.config.temporal_ensemble is None:
                self._chunks = self._chunks[-1:]

    def _covering(self, tick: int) -> list[np.ndarray]:
        return [c[tick - k] for k, c in self._chunks if k <= tick < k + len(c)]

    def _blend(self, rows: list[np.ndarray]) -> np.ndarray:
        m = self.config.temporal_ensemble
        if m is None or len(rows) == 1:
            return rows[-1]
        w = np.exp(-m * np.arange(len(rows)))
        return (w[:, None] * np.stack(rows)).sum(0) / w.sum()

    def action(self, tick: int) -> np.ndarray | None:
        """The command for ``tick``, or None when no plan covers it (the caller holds)."""
        with self._lock:
            self._chunks = [(k, c) for k, c in self._chunks if k + len(c) > tick]
            rows = self._covering(tick)
            if not rows:
                return None
            out = self._blend(rows)
            self._sent[tick] = out
            for old in [t for t in self._sent if t < tick - 16]:
                del self._sent[old]
            return out

    def planned(self, tick: int) -> np.ndarray:
        """Planned commands for ``tick, tick+1, ...`` up to the end of the newest chunk, [N, Da]."""
        with self._lock:
            if not self._chunks:
                return np.zeros((0, 0))
            k, c = self._chunks[-1]
            out = [self._blend(self._covering(t)) for t in range(max(tick, k), k + len(c))]
            return np.stack(out) if out else np.zeros((0, c.shape[1]))

    def step(self, obs: dict[str, np.ndarray], tick: int) -> np.ndarray | None:
        """Synchronous use (direct eval, lockstep): plan if due, then return the tick's action."""
        if self._tick0 is None:
            self._tick0 = tick
        self.observe(obs, tick)
        if self.wants_inference(tick):
            self.request()
            self.add_output(infer_seeded(self.policy, obs, self.noise_seed, tick - self._tick0), obs, tick)
        return self.action(tick)


class SlowFastExecutor(ChunkExecutor):
    """A slow-fast policy behind the executor API: plans (latents) every ``n_action_steps`` ticks,
    decodes one row per tick with that tick's fast observation.

    - Latency compensation: a plan that lands ``d`` ticks after its observation first runs its
      decoder through the ``d`` rows whose time has passed, with the fast values recorded at
      those ticks (counted in ``dropped_rows``), so row ``d`` is decoded in the state it would
      have had.
    - A fast value that is not finite (a NaN force sample) is never decoded: the tick holds the
      last good command (``held_ticks`` counts them; policy_node reports it) and the decoder
      later steps through that tick with the last finite value.
    - ``planned(tick)`` is the command of ``tick`` followed by the rest of the plan's
      ``n_action_steps`` rows decoded with the newest fast value held (what a published
      trajectory can promise).
    """

    HISTORY = 64  # ticks of fast values and commands kept

    def __init__(self, policy, config: ChunkExecutorConfig | None = None):
        super().__init__(policy, config)
        if self.config.temporal_ensemble is not None:
            raise SpecError("SlowFastExecutor: temporal_ensemble does not apply to a slow-fast policy "
                            "(each tick is decoded once, from the newest plan)")
        self.fast_keys = tuple(policy.config.fast_keys)
        self._state = None  # (plan tick, decoder state)
        self._fast: dict[int, dict[str, np.ndarray]] = {}
        self._good: dict[str, np.ndarray] | None = None  # newest finite fast values
        self._rows: dict[int, np.ndarray] = {}
        self.held_ticks = 0
        self.fast_stale = False  # the newest fast value was not finite
        robot = getattr(policy.config, "robot", None)
        self._spec = None if robot is None else load_spec(robot)
        self._limiter = self._new_limiter()

    def _new_limiter(self):
        """Decoded rows are held inside the robot's position, velocity and acceleration limits
        (SetpointLimiter's default margin under safety_node's), so what runs in process is what
        safety passes in the graph."""
        return None if self._spec is None else SetpointLimiter(self._spec)

    def reset(self, noise_seed: int | None = None) -> None:
        super().reset(noise_seed)
        with self._lock:
            self._state, self._good = None, None
            self._fast.clear()
            self._rows.clear()
            self.held_ticks, self.fast_stale = 0, False
            self._limiter = self._new_limiter()

    def _limit(self, lim, row: np.ndarray, anchor: np.ndarray) -> np.ndarray:
        if lim is None:
            return row
        if lim.prev is None:  # the episode's first command: from where the robot stood at the plan
            lim.reset(anchor)
        return lim(row)

    def observe(self, obs: dict[str, np.ndarray], tick: int) -> None:
        values = {k: np.asarray(obs[k], dtype=np.float64).reshape(-1, *np.shape(obs[k])[1:])[-1]
                  for k in self.fast_keys}
        finite = all(np.all(np.isfinite(v)) for v in values.values())
        with self._lock:
            self._fast[tick] = values if finite else None
            self.fast_stale = not finite
            if finite:
                self._good = values
            for old in [t for t in self._fast if t < tick - self.HISTORY]:
                del self._fast[old]

    def _fast_at(self, tick: int) -> dict[str, np.ndarray] | None:
        f = self._fast.get(tick)
        return f if f is not None else self._good

    def wants_inference(self, tick: int) -> bool:
        with self._lock:
            if self._pending or self.fast_stale:  # never plan from a NaN force: the tick holds
                return False
            if self._state is None:
                return True
            k, st = self._state
            return tick >= k + min(self.n_action_steps, st.length) - self.config.prefetch

    def add_output(self, out: dict, obs: dict[str, np.ndarray], obs_tick: int, now_tick: int | None = None) -> None:
        plan = {"latent": out["latent"], "anchor": out["anchor"]}
        with self._lock:
            start = self._fast_at(obs_tick)
        if start is None:
            with self._lock:
                self._pending = False
            raise ValueError(f"slow-fast executor: no finite {list(self.fast_keys)} value at tick {obs_tick} "
                             "to start the plan's decoder from")
        state = self.policy.decoder_start(plan, start)
        with self._lock:
            self._pending = False
            if now_tick is not None:
                self.dropped_rows += max(0, min(now_tick - obs_tick, state.length))
            self._state = (obs_tick, state)
            self._rows = {t: r for t, r in self._rows.items() if t < obs_tick}

    def add_chunk(self, chunk: np.ndarray, obs_tick: int, now_tick: int | None = None) -> None:
        raise TypeError("SlowFastExecutor takes plans (add_output), not action chunks")

    def action(self, tick: int) -> np.ndarray | None:
        with self._lock:
            if tick in self._rows:
                return self._rows[tick]
            if self._state is None:
                return None
            k, st = self._state
            if not k <= tick < k + st.length or st.rows > tick - k:
                return None
            while st.rows < tick - k:  # rows whose tick passed (a late plan, a held tick)
                self.policy.decoder_step(st, self._fast_at(k + st.rows))
            fast = self._fast.get(tick)
            if fast is None:  # not finite (or never observed): hold the last good command
                self.held_ticks += 1
                out = self._sent.get(max(self._sent)) if self._sent else None
                if out is None:
                    return None
                if self._limiter is not None:
                    self._limiter.follow(out)
            else:
                out = self._limit(self._limiter, self.policy.decoder_step(st, fast), st.anchor)
            self._rows[tick] = out
            self._sent[tick] = out
            for old in [t for t in self._rows if t < tick - self.HISTORY]:
                del self._rows[old]
            for old in [t for t in self._sent if t < tick - 16]:
                del self._sent[old]
            return out

    def planned(self, tick: int) -> np.ndarray:
        first = self.action(tick)
        with self._lock:
            if first is None or self._state is None:
                return np.zeros((0, 0))
            k, st = self._state
            ahead, fast = st.copy(), self._good
            rows = [first]
            if ahead.rows == tick - k + 1:  # the decoder is at this tick (not holding)
                # Through the rows the plan runs before the next one (as a chunk policy
                # publishes n_action_steps rows): the chunk's tail, decoded with a held force,
                # is never run and can leave the workspace.
                end = min(ahead.length, self.n_action_steps)
                lim = copy.deepcopy(self._limiter)
                rows += [self._limit(lim, self.policy.decoder_step(ahead, fast), ahead.anchor)
                         for _ in range(ahead.rows, end)]
            return np.stack(rows)


class ResidualExecutor:
    """Composition, not a subclass: wraps the base policy's own executor (any of the above) and
    adds the residual policy's per-tick correction to each of its rows,
    ``action(tick) = base(tick) + residual(obs of tick, base(tick))`` while ``enabled``.

    The tick's observation comes through ``observe`` (as for a slow-fast policy, so policy_node
    publishes every tick); ``planned(tick)`` is the corrected row of ``tick`` followed by the
    base's plan (later rows get their correction when their observations arrive). Everything
    else is the inner executor's."""

    def __init__(self, inner, policy, enabled: bool = True):
        self.inner, self.policy, self.enabled = inner, policy, enabled
        self.fast_keys = tuple(getattr(inner, "fast_keys", ()))  # policy_node: a per-tick policy
        self.held_ticks, self.fast_stale = getattr(inner, "held_ticks", 0), False
        self._obs: dict[int, dict[str, np.ndarray]] = {}
        self._rows: dict[int, np.ndarray] = {}
        self._limiter = policy.limiter()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def reset(self, noise_seed: int | None = None) -> None:
        self._obs.clear()
        self._rows.clear()
        self._limiter = self.policy.limiter()
        self.inner.reset(noise_seed)

    def observe(self, obs: dict[str, np.ndarray], tick: int) -> None:
        self._obs[tick] = obs
        for old in [t for t in self._obs if t < tick - 16]:
            del self._obs[old]
        self.inner.observe(obs, tick)

    def action(self, tick: int) -> np.ndarray | None:
        """The tick's command, computed once: the base's row plus the residual, held inside the
        limits from the last command; the base's row as it is while switched off or when the
        correction is exactly zero (an untrained residual is the base policy, to the bit)."""
        if tick in self._rows:
            return self._rows[tick]
        base = self.inner.action(tick)
        if base is None or tick not in self._obs:
            return base
        base = np.asarray(base, dtype=np.float64)
        lim = self._limiter
        correction = self.policy.residual(self._obs[tick], base) if self.enabled else None
        if correction is None or not np.any(correction):  # off, or nothing to add: the base's own row
            lim.follow(base)
            out = base
        else:
            if lim.prev is None:  # the episode's first command: from where the robot stands
                q = self._obs[tick].get("joint_pos")
                lim.reset(base if q is None else np.asarray(q, dtype=np.float64).reshape(-1, base.size)[-1])
            out = lim(base + correction)
        self._rows[tick] = out
        for old in [t for t in self._rows if t < tick - 16]:
            del self._rows[old]
        return out

    def planned(self, tick: int) -> np.ndarray:
        first = self.action(tick)
        rows = self.inner.planned(tick)
        if first is None or len(rows) == 0:
            return rows
        rows = np.array(rows, dtype=np.float64, copy=True)
        rows[0] = first
        return rows

    def step(self, obs: dict[str, np.ndarray], tick: int) -> np.ndarray | None:
        self.observe(obs, tick)
        base = self.inner.step(obs, tick)  # plans if due, and returns the base row
        return base if base is None else self.action(tick)


def make_executor(policy, config: ChunkExecutorConfig | None = None):
    """The executor a policy needs: ``SlowFastExecutor`` for slow-fast policies (``policy.fast``),
    ``ResidualExecutor`` around the base's for a residual policy (``policy.residual``), else
    ``ChunkExecutor``."""
    if hasattr(policy, "residual") and hasattr(policy, "base"):
        return ResidualExecutor(make_executor(policy.base, config), policy)
    return (SlowFastExecutor if getattr(policy, "fast", False) else ChunkExecutor)(policy, config)

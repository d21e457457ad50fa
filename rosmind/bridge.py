"""The ROS-free core of ``robot_node``: the episode loop, which setpoint to apply each tick,
and episode results.

``SimLoop`` runs episodes of a ``SimRobot``: each control tick it publishes the observation
(through an injected ``publish``), gets the tick's command from a ``CommandMailbox``, writes
it and steps. ``lockstep`` waits for the tick's answer (see ``CommandMailbox.wait``), re-sending
the tick every ``retry_s``; ``realtime`` steps on the (injected) clock at the control rate,
counting late ticks and recording each tick's start lateness.

``CommandMailbox`` receives commands from any thread (ROS callbacks) and answers the control
loop:

- real time: ``setpoint_at(t)`` -> the setpoint of the newest command at time ``t``. For a
  trajectory that is the point whose time ``stamp + time_from_start`` is the latest one
  ``<= t``, holding the last point past the end (None before its first point); for a position
  command it is that command.
- lockstep: ``open_tick(t)`` after publishing tick ``t``'s observation, then
  ``wait(timeout, grace)`` -> ``(kind, q)``, the answer for that tick:
  ``("command", q)`` a trajectory stamped ``t`` (its point at ``t``, i.e. ``points[0]``) or
  any position command received after ``open_tick``; ``("hold", None)`` an empty trajectory
  stamped ``t``; ``("rejected", None)`` the command for ``t`` was seen upstream of safety
  (``note_upstream``) but nothing came through within ``grace`` seconds; ``("timeout",
  None)`` nothing within ``timeout``. The caller holds its last setpoint unless ``q``.

An empty trajectory means "hold" as in ros2_control's joint_trajectory_controller: it also
cancels the current plan in real time.

Stamps are float seconds; two stamps within ``STAMP_EPS`` are the same tick.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rosmind.observation import STAMP_EPS
from rosmind.robot import Observation, SimRobot


class CommandMailbox:
    def __init__(self, dof: int):
        self.dof = dof
        self._cond = threading.Condition()
        self._traj: tuple[float, np.ndarray, np.ndarray] | None = None  # stamp, times [N], pos [N, D]
        self._position: np.ndarray | None = None
        self._newest = ""  # "trajectory" | "position": the kind received last
        self._open: float | None = None
        self._answer: tuple[str, np.ndarray | None] | None = None
        self._upstream_at: float | None = None  # monotonic time the open tick's command was seen upstream
        self.received = 0

    def clear(self) -> None:
        """Forget every command (new episode: the old plan must not drive the new scene)."""
        with self._cond:
            self._traj, self._position, self._newest = None, None, ""
            self._open, self._answer, self._upstream_at = None, None, None

    def _is_open(self, stamp: float) -> bool:
        return self._open is not None and abs(stamp - self._open) <= STAMP_EPS

    @staticmethod
    def _point_at(traj: tuple[float, np.ndarray, np.ndarray], t: float) -> np.ndarray | None:
        stamp, times, pos = traj
        i = int(np.searchsorted(stamp + times, t + STAMP_EPS, side="right")) - 1
        return None if i < 0 else pos[i].copy()

    def put_trajectory(self, stamp: float, times: np.ndarray, positions: np.ndarray) -> None:
        """A trajectory: ``times`` [N] seconds from ``stamp`` (non-decreasing), ``positions`` [N, D]."""
        times = np.asarray(times, dtype=np.float64)
        positions = np.asarray(positions, dtype=np.float64).reshape(len(times), self.dof)
        with self._cond:
            self.received += 1
            if not len(times):  # hold: cancel the plan, keep the current setpoint
                self._traj, self._position, self._newest = None, None, ""
                if self._is_open(stamp):
                    self._answer = ("hold", None)
                    self._cond.notify_all()
                return
            self._traj = (float(stamp), times, positions)
            self._newest = "trajectory"
            if self._is_open(stamp):
                q = self._point_at(self._traj, self._open)
                if q is not None:
                    self._answer = ("command", q)
                    self._cond.notify_all()

    def note_upstream(self, stamp: float) -> None:
        """A command stamped ``stamp`` was seen on its way to safety (lockstep bookkeeping)."""
        with self._cond:
            if self._is_open(stamp) and self._upstream_at is None:
                self._upstream_at = time.monotonic()
                self._cond.notify_all()

    def put_position(self, positions: np.ndarray) -> None:
        q = np.asarray(positions, dtype=np.float64).reshape(self.dof)
        with self._cond:
            self._position = q.copy()
            self._newest = "position"
            self.received += 1
            if self._open is not None:
                self._answer = ("command", q.copy())
                self._cond.notify_all()

    def setpoint_at(self, t: float) -> np.ndarray | None:
        with self._cond:
            if self._newest == "position":
                return self._position.copy()
            if self._newest == "trajectory":
                return self._point_at(self._traj, t)
            return None

    def covers(self, t: float) -> bool:
        """Whether the newest command still says what to do at ``t``: a position command, or
        a trajectory whose last point is not in the past (else the robot holds its end)."""
        with self._cond:
            if self._newest == "position":
                return True
            if self._newest == "trajectory":
                stamp, times, _ = self._traj
                return stamp + times[-1] >= t - STAMP_EPS
            return False

    def open_tick(self, t: float) -> None:
        with self._cond:
            self._open, self._answer, self._upstream_at = float(t), None, None

    def wait(self, timeout: float, grace: float | None = None) -> tuple[str, np.ndarray | None]:
        """Block until the open tick is answered, or ``timeout`` seconds pass (see module doc)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._answer is None:
                now = time.monotonic()
                end = deadline
                if grace is not None and self._upstream_at is not None:
                    if now >= self._upstream_at + grace:
                        return ("rejected", None)
                    end = min(end, self._upstream_at + grace)
                if now >= deadline:
                    return ("timeout", None)
                self._cond.wait(end - now)
            answer, self._answer = self._answer, None
            self._open, self._upstream_at = None, None
            return answer


@dataclass
class EpisodeResult:
    episode: int
    seed: int
    success: bool
    ticks: int
    sim_time: float
    wall_s: float
    missed_commands: int = 0  # lockstep: no answer within the timeout
    late_ticks: int = 0  # realtime: a tick that overran its period
    safety_holds: int = 0  # lockstep: safety refused the tick's command (robot held)
    # realtime: ticks after the episode's first command that no command covered (the plan ran
    # out before the next one came: the robot held its last setpoint)
    no_plan_ticks: int = 0
    ended_by: str = "done"  # done | reset
    final_error: float | None = None  # task_status()["error"] at the end, where the task has one


@dataclass
class EpisodeLog:
    """Outcomes of a run of episodes; ``write`` saves the results JSON robot_node promises."""

    robot: str
    task: str
    mode: str
    seed: int
    episodes: list[EpisodeResult] = field(default_factory=list)
    latency: dict = field(default_factory=dict)  # e.g. {"round_trip_ms": latency_summary(...)}

    def add(self, result: EpisodeResult) -> None:
        self.episodes.append(result)

    def summary(self) -> dict:
        n = len(self.episodes)
        ticks = sum(e.ticks for e in self.episodes)
        wall = sum(e.wall_s for e in self.episodes)
        return {
            "n_episodes": n,
            "success_rate": (sum(e.success for e in self.episodes) / n) if n else 0.0,
            "ticks": ticks,
            "ticks_per_s": ticks / wall if wall > 0 else 0.0,
            "missed_commands": sum(e.missed_commands for e in self.episodes),
            "late_ticks": sum(e.late_ticks for e in self.episodes),
            "safety_holds": sum(e.safety_holds for e in self.episodes),
            "no_plan_ticks": sum(e.no_plan_ticks for e in self.episodes),
        }

    def to_dict(self) -> dict:
        return {"robot": self.robot, "task": self.task, "mode": self.mode, "seed": self.seed,
                **self.summary(), "latency": self.latency, "episodes": [asdict(e) for e in self.episodes]}

    def write(self, path: str | Path) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(p)


def episode_line(r: EpisodeResult) -> str:
    """The one line robot_node prints per episode."""
    return f"episode {r.episode} seed {r.seed} success {r.success} ticks {r.ticks} sim_time {r.sim_time:.2f}"


class SimLoop:
    """Episodes of ``sim`` driven by the commands in ``mailbox``.

    ``publish(obs, t) -> resend``: publish tick ``t``'s observation; ``resend()`` publishes the
    same messages again. ``after_tick(t, result_so_far)`` runs after every step (diagnostics).
    ``stop`` ends the run, ``reset_requested`` the current episode (both thread-safe events).
    Sim time is ``tick * dt`` with ``tick`` counted across episodes (monotonic ``/clock``).
    ``align``: every episode starts on a tick that is a multiple of it (the cameras' common
    period in ticks), so a camera's frames fall on the same ticks *of the episode* as in process
    (``sim.cameras``) and the first observation of an episode never holds the last one's frame.
    """

    def __init__(self, sim: SimRobot, mailbox: CommandMailbox, mode: str,
                 publish: Callable[[Observation, float], Callable[[], None]], *,
                 timeout_s: float = 10.0, retry_s: float = 0.5, grace_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 after_tick: Callable[[float, EpisodeResult], None] | None = None, align: int = 1):
        if mode not in ("lockstep", "realtime"):
            raise ValueError(f"mode must be lockstep or realtime, got {mode!r}")
        self.sim, self.mailbox, self.mode, self.publish = sim, mailbox, mode, publish
        self.timeout_s, self.retry_s, self.grace_s = timeout_s, retry_s, grace_s
        self.clock, self.sleep, self.after_tick = clock, sleep, after_tick
        self.dt = sim.spec.control_period
        self.tick = 0
        self.align = max(1, int(align))
        self.lateness: deque[float] = deque(maxlen=2000)  # realtime: tick start - schedule, s
        self.stop = threading.Event()
        self.reset_requested = threading.Event()

    def _lockstep_answer(self, resend: Callable[[], None]) -> tuple[str, np.ndarray | None]:
        deadline = self.clock() + self.timeout_s
        while not self.stop.is_set():
            left = deadline - self.clock()
            if left <= 0:
                break
            kind, q = self.mailbox.wait(min(left, self.retry_s), self.grace_s)
            if kind != "timeout":
                return kind, q
            resend()  # a subscriber matched after the first send gets the tick now
        return "timeout", None

    def episode(self, index: int, seed: int) -> EpisodeResult:
        """Run one episode until the task is done, a reset is requested, or ``stop``."""
        obs = self.sim.reset(seed)
        self.tick = -(-self.tick // self.align) * self.align  # /clock skips to the next aligned tick
        self.mailbox.clear()
        self.reset_requested.clear()
        r = EpisodeResult(index, seed, False, 0, 0.0, 0.0)
        wall0 = anchor = self.clock()  # anchor: wall time of tick 0 (re-anchored when late)
        received0 = self.mailbox.received
        while not self.stop.is_set():
            t = self.tick * self.dt
            if self.mode == "realtime":
                self.lateness.append(self.clock() - (anchor + r.ticks * self.dt))
                self.publish(obs, t)
                q = self.mailbox.setpoint_at(t)
                if self.mailbox.received > received0 and not self.mailbox.covers(t):
                    r.no_plan_ticks += 1
            else:
                self.mailbox.open_tick(t)  # before publishing: an answer may beat publish()'s return
                kind, q = self._lockstep_answer(self.publish(obs, t))
                r.missed_commands += kind == "timeout"
                r.safety_holds += kind in ("hold", "rejected")
            if q is not None:
                self.sim.write(q)  # clipped to the spec's limits; safety_node is the real gate
            self.sim.step()
            self.tick += 1
            r.ticks += 1
            if self.mode == "realtime":
                wait = anchor + r.ticks * self.dt - self.clock()
                if wait > 0:
                    self.sleep(wait)
                else:
                    r.late_ticks += 1
                    anchor = self.clock() - r.ticks * self.dt
            if self.after_tick is not None:
                self.after_tick(t, r)
            if self.sim.task_status()["done"] or self.reset_requested.is_set():
                break
            obs = self.sim.read()
        status = self.sim.task_status()
        r.success, r.final_error = bool(status["success"]), status.get("error")
        r.sim_time, r.wall_s = r.ticks * self.dt, self.clock() - wall0
        r.ended_by = "reset" if self.reset_requested.is_set() else "done"
        return r

"""Safety supervisor core: everything between a policy's commands and the robot (no ROS here).

``safety_node`` is a thin shell around :class:`SafetySupervisor`; the clock and the logger
are injected so the watchdog is tested with a fake clock.

Commands (all positions in the spec's joint order, rad or m):

- ``filter_trajectory(names, points[N, D], stamp) -> [N, D] | None``: an action chunk, row
  ``i`` for control tick ``i`` after ``stamp`` (the stamp of the observation it was computed
  from). ``names`` may be any permutation of the spec's joints; rows are reordered.
- ``filter_timed_trajectory(names, times[N], points[N, n], stamp, velocities=None)``: any
  JointTrajectory as ros2_control's joint_trajectory_controller takes it: strictly increasing
  ``time_from_start`` (one waypoint is fine), joints matched by name, resampled onto the
  control grid from the current setpoint (``rosmind.trajectory``: linear, cubic where
  velocities are given), then checked as a chunk. A partial joint set is refused, naming the
  missing joints, unless ``allow_partial_joints`` (the others then hold).
- ``filter_command(q[D]) -> [D] | None``: one setpoint for the next control tick (unstamped,
  the ros2_control forward-controller convention).

Both return what may be sent to the robot, or ``None`` when the whole message is rejected.
Checks, in order: e-stop latched; no joint_states measured yet; joint names/count; NaN/inf
anywhere; position limits (clamp, counted ``position_clamped``); jump: the first point further
than ``max_jump_rad`` (inf-norm) from the reference, or any step inside the chunk larger than
that; per-step acceleration ``|dq[i] - dq[i-1]| <= a_max * dt**2`` and velocity ``|dq[i]| <=
v_max * dt`` (``dq[i] = q[i] - q[i-1]``, ``dt`` = control period, point 0 relative to the
reference); then the end-effector workspace box (only with an injected ``fk``). In ``mode =
"reject"`` every limit violation rejects the message instead of clamping it. Each clamp or
rejection is one intervention of one kind (see ``KINDS``), with a reason.

The reference for point 0 is the last safe setpoint: the accepted plan evaluated at the tick
before ``stamp`` (ARMED), the hold setpoint (HOLDING), or the measured position (STOPPED, or
when the measured position is more than ``max_jump_rad`` from the setpoint, e.g. after a sim
reset; there the jump threshold is ``rearm_tolerance_rad``: a command re-arms only near where
the robot is).

States: ``STOPPED`` at start (nothing accepted yet), ``ARMED`` after an accepted command,
``HOLDING`` when no accepted command covers the last ``watchdog_hold_periods`` control periods
(the hold setpoint is the last point of the last accepted plan), ``STOPPED`` after
``watchdog_stop_timeout_s`` without one (the setpoint is the measured position at that moment:
zero velocity), ``ESTOP`` (latched by ``estop()``; every command rejected; cleared only by
``reset()``). A chunk "covers" until its last point's tick, so a receding-horizon policy that
sends a long chunk every few ticks does not trip the watchdog. ``tick()``, ``estop()`` and
``reset()`` return a setpoint to send only on a transition: the robot keeps tracking its
last setpoint, and a setpoint repeated every tick would fight a later sim reset.

Not thread-safe: call from one thread (the node's single-threaded executor).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np

from rosmind.errors import SpecError
from rosmind.spec import RobotSpec
from rosmind.trajectory import brake_step, check_trajectory, limited_step, resample

KINDS = ("nan_rejected", "position_clamped", "velocity_limited", "acceleration_limited",
         "jump_rejected", "workspace_rejected", "joint_names_rejected", "malformed_rejected",
         "no_joint_states", "watchdog_hold", "watchdog_stop", "estop", "fall_detected")
_EPS = 1e-9


class State(StrEnum):
    ARMED = "ARMED"
    HOLDING = "HOLDING"
    STOPPED = "STOPPED"
    ESTOP = "ESTOP"


@dataclass
class SafetyConfig:
    """The safety node's parameters (each field is a ROS parameter of ``safety_node``)."""

    robot: str = "panda"  # robot spec name or YAML path
    watchdog_hold_periods: int = 3  # control periods without a command before HOLDING
    watchdog_stop_timeout_s: float = 0.5  # seconds without a command before STOPPED
    max_jump_rad: float = 0.5  # max inf-norm step from the reference / between chunk points
    rearm_tolerance_rad: float = 0.2  # when STOPPED: max distance of point 0 from measured
    enforce_workspace: bool = True  # check the EE box of the spec (needs forward kinematics)
    mode: Literal["clamp", "reject"] = "clamp"  # what a limit violation does
    diagnostics_rate_hz: float = 2.0
    # JointTrajectory input: joints a trajectory leaves out hold (True) or the message is refused
    # (False, joint_trajectory_controller's default); trajectories longer than this are refused.
    allow_partial_joints: bool = False
    max_trajectory_s: float = 60.0

    def __post_init__(self):
        def bad(name: str, why: str):
            raise SpecError(f"SafetyConfig.{name}: {why}, got {getattr(self, name)!r}")

        if not self.robot:
            bad("robot", "must name a robot spec")
        if self.watchdog_hold_periods < 1:
            bad("watchdog_hold_periods", "must be >= 1")
        for name in ("watchdog_stop_timeout_s", "max_jump_rad", "rearm_tolerance_rad",
                     "diagnostics_rate_hz", "max_trajectory_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                bad(name, "must be a positive finite number")
        if self.rearm_tolerance_rad > self.max_jump_rad:
            bad("rearm_tolerance_rad", f"must not exceed max_jump_rad={self.max_jump_rad}")
        if self.mode not in ("clamp", "reject"):
            bad("mode", "must be 'clamp' or 'reject'")


@dataclass
class _Plan:
    stamp: float
    points: np.ndarray  # [N, D]
    accepted_at: float

    def at_tick(self, t: float, dt: float) -> np.ndarray:
        i = int(round((t - self.stamp) / dt))
        return self.points[min(max(i, 0), len(self.points) - 1)]

    def covered_until(self, dt: float) -> float:
        return max(self.accepted_at, self.stamp + (len(self.points) - 1) * dt)


class _Rejected(Exception):
    pass


class SafetySupervisor:
    """Validates commands against ``spec`` limits; runs the stale-command watchdog and e-stop.

    ``clock() -> seconds`` (ROS time in the node, fake in tests); ``log(text)`` receives one
    warning line per intervention (throttled to one per kind per second) and ``info(text)``
    state changes (default: ``log``); ``fk(q[D]) -> xyz[3]`` in the workspace frame enables the
    workspace check.
    """

    def __init__(self, spec: RobotSpec, config: SafetyConfig, clock: Callable[[], float],
                 log: Callable[[str], None] = print,
                 fk: Callable[[np.ndarray], np.ndarray] | None = None,
                 info: Callable[[str], None] | None = None):
        self.spec, self.config, self.clock, self._log, self.fk = spec, config, clock, log, fk
        self._info = info or log
        self.dt = spec.control_period
        if config.watchdog_stop_timeout_s <= config.watchdog_hold_periods * self.dt:
            raise SpecError(
                f"SafetyConfig.watchdog_stop_timeout_s: {config.watchdog_stop_timeout_s} s must "
                f"exceed watchdog_hold_periods * control period = "
                f"{config.watchdog_hold_periods} * {self.dt:.4g} s for robot {spec.name!r}")
        self.names = spec.joint_names
        self.lower = np.array(spec.limits("lower"))
        self.upper = np.array(spec.limits("upper"))
        self.max_step = np.array(spec.limits("velocity")) * self.dt
        self.max_dstep = np.array(spec.limits("acceleration")) * self.dt**2
        self.workspace_active = bool(config.enforce_workspace and spec.workspace and fk)
        self.state = State.STOPPED
        self.measured: np.ndarray | None = None
        self.measured_at = -math.inf
        self.plan: _Plan | None = None
        self.setpoint: np.ndarray | None = None  # latched hold / stop / e-stop setpoint
        self.counts = dict.fromkeys(KINDS, 0)
        self.accepted = 0
        self.last_intervention = ""
        self._last_log: dict[str, float] = {}

    # inputs

    def update_measured(self, q: np.ndarray) -> None:
        """Measured joint positions ``[D]`` in spec order (non-finite readings are ignored).

        A reading further from the previous one than the joints can move in the time between
        them (1.5x the velocity limit, at least one control period) means something else moved
        the robot (a sim reset, a driver re-homing): the plan is dropped and the next command
        continues from the measured position (STOPPED), never from the old setpoint."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape == (len(self.names),) and np.all(np.isfinite(q)):
            now = self.clock()
            if self.measured is not None and self.state in (State.ARMED, State.HOLDING):
                reach = 1.5 * self.max_step / self.dt * max(now - self.measured_at, self.dt) + 1e-3
                jump = np.abs(q - self.measured) - reach
                if np.any(jump > 0):
                    j = int(np.argmax(jump))
                    self._info(f"measured {self.names[j]} jumped {abs(q[j] - self.measured[j]):.3f} between two "
                               f"joint_states (robot reset or moved): {self.state.value} -> STOPPED, "
                               "continuing from the measured position")
                    self.state, self.plan, self.setpoint = State.STOPPED, None, None
            self.measured = q.copy()
            self.measured_at = now

    def filter_trajectory(self, names: Sequence[str], points: np.ndarray,
                          stamp: float) -> np.ndarray | None:
        """Validate a chunk (``points[N, D]`` in ``names`` order, row ``i`` at ``i * dt``);
        ``stamp <= 0`` means now. Returns the safe chunk ``[N, D]`` in spec order, or ``None``."""
        pts = np.asarray(points, dtype=np.float64)
        return self.filter_timed_trajectory(names, np.arange(pts.shape[0] if pts.ndim else 0) * self.dt, pts, stamp)

    def filter_timed_trajectory(self, names: Sequence[str], times: np.ndarray, points: np.ndarray,
                                stamp: float, velocities: np.ndarray | None = None,
                                has_velocity: np.ndarray | None = None) -> np.ndarray | None:
        """A JointTrajectory's waypoints (``points[N, len(names)]`` reached at ``times[N]`` s after
        ``stamp``; ``stamp <= 0`` means now) -> the safe chunk ``[M, D]`` on the control grid in
        spec order, row ``k`` at ``stamp + k * dt``; ``None`` if rejected."""
        now = self.clock()
        try:
            self._ready()
            names = list(names)
            t = np.asarray(times, dtype=np.float64).reshape(-1)
            pts = np.asarray(points, dtype=np.float64)
            problem = check_trajectory(names, self.names, t, pts, self.config.allow_partial_joints,
                                       self.config.max_trajectory_s, self.spec.name)
            if problem is not None:
                raise self._reject(*problem)
            vel = None if velocities is None else np.asarray(velocities, dtype=np.float64)
            for what, a in (("position", pts), ("velocity", vel)):
                if a is not None and not np.all(np.isfinite(a)):
                    i, j = np.argwhere(~np.isfinite(a))[0]
                    raise self._reject("nan_rejected", f"non-finite {what} {a[i, j]} at point {i}, joint {names[j]}")
            stamp = stamp if stamp > 0 else now
            start, start_step = self._reference(stamp, quiet=True)[:2]
            cols = [names.index(n) if n in names else -1 for n in self.names]
            full = np.where(np.array(cols) >= 0, pts[:, cols], start)  # left-out joints hold
            full_v = None if vel is None else np.where(np.array(cols) >= 0, vel[:, cols], 0.0)
            grid = resample(t, full, start, self.dt, full_v, start_step / self.dt, has_velocity)
            return self._validate(grid, stamp, now)
        except _Rejected:
            return None

    def filter_command(self, q: np.ndarray) -> np.ndarray | None:
        """Validate one setpoint ``q[D]`` (spec order) for the next tick; ``[D]`` or ``None``."""
        now = self.clock()
        try:
            self._ready()
            q = np.asarray(q, dtype=np.float64)
            if q.shape != (len(self.names),):
                raise self._reject("joint_names_rejected",
                                   f"command has {q.size} values, robot {self.spec.name!r} has "
                                   f"{len(self.names)} joints {self.names}")
            out = self._validate(q[None], now, now)
            return None if out is None else out[0]
        except _Rejected:
            return None

    def reject(self, kind: str, reason: str) -> None:
        """Count a rejection found outside the core (e.g. a message that failed to convert)."""
        self._reject(kind, reason)

    def estop(self) -> np.ndarray | None:
        """Latch the e-stop. Returns the measured position to hold, once (None if latched)."""
        if self.state is State.ESTOP:
            return None
        self.state = State.ESTOP
        self.setpoint = None if self.measured is None else self._measured_in_limits()
        self._intervene("estop", "e-stop engaged: holding the measured position, every "
                        "command rejected until safety/reset")
        return self.setpoint

    def reset(self) -> tuple[np.ndarray | None, str]:
        """Clear e-stop / STOPPED; re-arm at the measured position.
        Returns ``(setpoint to send or None, message)``; fails without joint_states."""
        if self.measured is None:
            return None, "cannot re-arm: no joint_states received yet"
        now = self.clock()
        previous = self.state.value
        self.state = State.ARMED
        q = self._measured_in_limits()
        self._set_plan(now, q[None], q, np.zeros_like(q), now)
        self.setpoint = None
        self._info(f"reset: {previous} -> ARMED at the measured position")
        return q, f"re-armed from {previous} at the measured position"

    def tick(self, now: float | None = None) -> np.ndarray | None:
        """Run the watchdog; returns a hold/stop setpoint ``[D]`` on a transition, else None."""
        now = self.clock() if now is None else now
        if self.state not in (State.ARMED, State.HOLDING) or self.plan is None:
            return None
        age = now - self.plan.covered_until(self.dt)
        out = None
        if self.state is State.ARMED and age >= self.config.watchdog_hold_periods * self.dt - _EPS:
            self.state = State.HOLDING
            self.setpoint = self.plan.points[-1].copy()
            self._intervene("watchdog_hold", f"no new command for {age:.3f} s after the last "
                            "accepted one ran out: holding its last setpoint")
            out = self.setpoint
        if (self.state is State.HOLDING and age >= self.config.watchdog_stop_timeout_s - _EPS
                and self.measured is not None):
            self.state = State.STOPPED
            self.setpoint = self._measured_in_limits()
            self._intervene("watchdog_stop", f"no new command for {age:.3f} s: stopped at the "
                            "measured position; a command near it (or safety/reset) re-arms")
            out = self.setpoint
        return out

    # outputs

    def status(self, now: float | None = None) -> dict:
        """Diagnostics: ``level`` (OK/WARN/ERROR), ``message``, and the key/values to publish."""
        now = self.clock() if now is None else now
        if self.state is State.ESTOP:
            level, msg = "ERROR", "e-stop latched; call safety/reset"
        elif self.measured is None:
            level, msg = "WARN", "waiting for joint_states; nothing is forwarded"
        elif now - self.measured_at > self.config.watchdog_stop_timeout_s:
            level, msg = "WARN", f"joint_states stale ({now - self.measured_at:.2f} s old)"
        elif self.state is State.ARMED:
            level, msg = "OK", "forwarding validated commands"
        elif self.state is State.HOLDING:
            level, msg = "WARN", "stale commands: holding the last safe setpoint"
        else:
            level, msg = "WARN", "stopped: waiting for a command near the measured position"
        age = -1.0 if self.plan is None else (now - self.plan.accepted_at) * 1e3
        values: dict[str, object] = {
            "state": self.state.value,
            "interventions_total": sum(self.counts.values()),
            **self.counts,
            "accepted_total": self.accepted,
            "last_intervention": self.last_intervention,
            "command_age_ms": round(age, 1),
            "workspace_enforced": self.workspace_active,
            "joint_states_received": self.measured is not None,
            "joint_states_age_ms": round((now - self.measured_at) * 1e3, 1)
            if self.measured is not None else -1.0,
        }
        return {"level": level, "message": msg, "values": values}

    @property
    def interventions_total(self) -> int:
        return sum(self.counts.values())

    # internals

    def _measured_in_limits(self) -> np.ndarray:
        """The measured position as a setpoint: inside the position limits, which a sensor reading
        may pass by a hair (a simulated finger at its stop reads 0.04 + 1e-6) or a robot pushed
        past a soft limit by more; safety never commands a position outside them."""
        return np.clip(self.measured, self.lower, self.upper)

    def _ready(self) -> None:
        if self.state is State.ESTOP:
            raise self._reject("estop", "command rejected: e-stop latched (call safety/reset)")
        if self.measured is None:
            raise self._reject("no_joint_states", "command rejected: no joint_states yet")

    def _reference(self, stamp: float, quiet: bool = False) -> tuple[np.ndarray, np.ndarray, float, str]:
        """(position, per-step velocity, jump threshold, name) that point 0 continues from."""
        ref = None
        if self.state is State.ARMED and self.plan is not None:
            ref = self.plan.at_tick(stamp - self.dt, self.dt)
            ref_step, name = ref - self.plan.at_tick(stamp - 2 * self.dt, self.dt), "last safe setpoint"
        elif self.state is State.HOLDING and self.setpoint is not None:
            ref, ref_step, name = self.setpoint, np.zeros_like(self.setpoint), "hold setpoint"
        if ref is not None:
            gap = float(np.max(np.abs(ref - self.measured)))
            if gap <= self.config.max_jump_rad:
                return ref, ref_step, self.config.max_jump_rad, name
            # The robot is far from its setpoint: it was moved by something else (a sim reset,
            # a driver re-homing). Continue from where it really is, as after a stop.
            if not quiet:
                self._log(f"measured position is {gap:.3f} from the {name}: re-referencing to the "
                          "measured position")
        return (self.measured, np.zeros_like(self.measured), self.config.rearm_tolerance_rad,
                "measured position")

    def _set_plan(self, stamp: float, pts: np.ndarray, ref: np.ndarray, ref_step: np.ndarray,
                  now: float) -> None:
        # Keep the two ticks before ``stamp`` so the next command finds the position and the
        # per-step velocity it continues from (one-point commands included).
        hist = np.vstack([ref - ref_step, ref, pts])
        self.plan = _Plan(stamp - 2 * self.dt, hist, now)

    def _validate(self, pts: np.ndarray, stamp: float, now: float) -> np.ndarray | None:
        if not np.all(np.isfinite(pts)):
            bad = np.argwhere(~np.isfinite(pts))[0]
            raise self._reject("nan_rejected", f"non-finite value {pts[tuple(bad)]} at point "
                               f"{bad[0]}, joint {self.names[bad[1]]}")
        clamp = self.config.mode == "clamp"
        out = np.clip(pts, self.lower, self.upper)
        if np.any(np.abs(out - pts) > _EPS):
            i, j = np.argwhere(np.abs(out - pts) > _EPS)[0]
            self._limit("position_clamped", clamp,
                        f"{self.names[j]} = {pts[i, j]:.4f} outside [{self.lower[j]}, "
                        f"{self.upper[j]}] at point {i}")
        ref, ref_step, max_jump, ref_name = self._reference(stamp)
        steps = np.diff(np.vstack([ref[None], out]), axis=0)
        jumps = np.max(np.abs(steps), axis=1)
        if np.any(jumps > max_jump + _EPS):
            i = int(np.argmax(jumps > max_jump + _EPS))
            j = int(np.argmax(np.abs(steps[i])))
            where = f"point 0 is {jumps[0]:.3f} from the {ref_name}" if i == 0 else \
                f"point {i} is {jumps[i]:.3f} from point {i - 1}"
            raise self._reject("jump_rejected", f"{where} (joint {self.names[j]}), limit "
                               f"{max_jump} rad")
        limited = self._limit_motion(out, ref, ref_step)
        if np.any(np.abs(limited - out) > _EPS):
            self._count_motion_limit(out, ref, ref_step, clamp)
        out = limited
        if self.workspace_active:
            self._check_workspace(out, ref)
        self._set_plan(stamp, out, ref, ref_step, now)
        self.setpoint = None
        if self.state is not State.ARMED:
            self._info(f"armed: accepted a command in {self.state.value}")
        self.state = State.ARMED
        self.accepted += 1
        return out

    def _limit_motion(self, pts: np.ndarray, ref: np.ndarray, ref_step: np.ndarray) -> np.ndarray:
        """Track ``pts`` [N, D] from (``ref``, ``ref_step``) within the per-step velocity and
        acceleration bounds, never overshooting the target and braking in time for the
        position limits. A command that already respects the limits comes back unchanged."""
        a, vmax = self.max_dstep, self.max_step
        prevs = np.vstack([ref[None], pts[:-1]])
        steps = pts - prevs
        dsteps = np.diff(np.vstack([ref_step[None], steps]), axis=0)
        if (np.all(np.abs(steps) <= vmax + _EPS) and np.all(np.abs(dsteps) <= a + _EPS)
                and np.all(steps <= brake_step(self.upper - prevs, a) + _EPS)
                and np.all(-steps <= brake_step(prevs - self.lower, a) + _EPS)):
            return pts.copy()  # the common case, vectorized: nothing to limit
        out = np.empty_like(pts)
        prev, prev_step, prev_target = ref, ref_step, ref
        for i, target in enumerate(pts):
            out[i] = limited_step(prev, prev_step, prev_target, target, self.lower, self.upper, vmax, a)
            prev_step, prev, prev_target = out[i] - prev, out[i], target
        return out

    def _count_motion_limit(self, pts: np.ndarray, ref: np.ndarray, ref_step: np.ndarray,
                            clamp: bool) -> None:
        """Name what the command itself violated (velocity, acceleration, or neither: then the
        limiter braked it to stop within the position limits)."""
        steps = np.diff(np.vstack([ref[None], pts]), axis=0)
        over_v = np.abs(steps) > self.max_step + _EPS
        dsteps = np.diff(np.vstack([ref_step[None], steps]), axis=0)
        over_a = np.abs(dsteps) > self.max_dstep + _EPS
        if over_v.any():
            i, j = np.argwhere(over_v)[0]
            self._limit("velocity_limited", clamp,
                        f"{self.names[j]} at {abs(steps[i, j]) / self.dt:.3f}/s exceeds "
                        f"{self.spec.joints[j].velocity}/s at point {i}")
        if over_a.any():
            i, j = np.argwhere(over_a)[0]
            self._limit("acceleration_limited", clamp,
                        f"{self.names[j]} at {abs(dsteps[i, j]) / self.dt**2:.2f}/s^2 exceeds "
                        f"{self.spec.joints[j].acceleration}/s^2 at point {i}")
        if not (over_v.any() or over_a.any()):
            self._limit("acceleration_limited", clamp,
                        "braked: the command could not stop within the position limits")

    def _check_workspace(self, pts: np.ndarray, ref: np.ndarray) -> None:
        ws = self.spec.workspace
        lo, hi = np.array(ws.min), np.array(ws.max)

        def outside(q: np.ndarray) -> tuple[float, np.ndarray]:
            x = np.asarray(self.fk(q), dtype=np.float64)
            return float(np.linalg.norm(np.maximum(lo - x, 0) + np.maximum(x - hi, 0))), x

        # A point may sit outside the box only if it is no further out than the reference, so
        # a robot that starts outside can still be moved back in.
        allowed = outside(ref)[0] + 1e-6
        for i, q in enumerate(pts):
            d, x = outside(q)
            if d > allowed:
                raise self._reject("workspace_rejected",
                                   f"point {i} puts {self.spec.ee_link or 'the end effector'} at "
                                   f"{np.round(x, 3).tolist()}, {d:.3f} m outside the workspace "
                                   f"box {list(ws.min)}..{list(ws.max)} ({ws.frame})")

    def _limit(self, kind: str, clamp: bool, reason: str) -> None:
        if clamp:
            self._intervene(kind, f"clamped: {reason}")
        else:
            raise self._reject(kind, f"rejected (mode=reject): {reason}")

    def _reject(self, kind: str, reason: str) -> _Rejected:
        self._intervene(kind, reason)
        return _Rejected(reason)

    def _intervene(self, kind: str, reason: str) -> None:
        if kind not in self.counts:
            raise ValueError(f"unknown intervention kind {kind!r}; expected one of {KINDS}")
        self.counts[kind] += 1
        self.last_intervention = f"{kind}: {reason}"
        now = self.clock()
        if now - self._last_log.get(kind, -math.inf) >= 1.0:
            self._last_log[kind] = now
            self._log(f"safety intervention {self.last_intervention} "
                      f"(x{self.counts[kind]} so far)")

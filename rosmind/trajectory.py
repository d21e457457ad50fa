"""JointTrajectory semantics of ros2_control's joint_trajectory_controller, on the control grid.

    grid = resample(times, positions, start, dt, velocities=None, start_velocity=None)

A trajectory starts at its header stamp (time 0) from the robot's current setpoint ``start``
and reaches waypoint ``i`` at ``times[i]`` (strictly increasing, > 0 unless waypoint 0 *is* the
time-0 state). ``resample`` returns the setpoints on the control grid, row ``k`` at ``k * dt``
for ``k = 0 .. ceil(times[-1] / dt)``: row 0 is ``start`` (or waypoint 0 when ``times[0] == 0``)
and the last row is the final waypoint, held exactly. Between two waypoints the interpolation
is linear, or a cubic Hermite spline where both ends have a velocity (the start's is
``start_velocity``, zero if not given), as the controller's spline interpolation does. A
trajectory already on the grid (``times == i * dt`` from 0) comes back unchanged, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

_TOL = 1e-6  # seconds: a waypoint this close to a grid time is on it


def brake_step(dist: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Largest step ``c >= 0`` such that steps ``c, c - a, c - 2a, ...`` (down to zero) travel
    at most ``dist`` in total: the fastest step from which the joint can still stop in time.
    With ``k`` such steps, the distance is ``k*c - a*k*(k-1)/2``."""
    dist = np.maximum(dist, 0.0)
    k = np.maximum(np.ceil((np.sqrt(1.0 + 8.0 * dist / a) - 1.0) / 2.0 - 1e-9), 1.0)
    return (dist + a * k * (k - 1.0) / 2.0) / k


def limited_step(prev, prev_step, prev_target, target, lower, upper, vmax, a) -> np.ndarray:
    """The next setpoint toward ``target`` from ``prev`` (moved by ``prev_step`` last period and
    aimed at ``prev_target``): within the per-period step bound ``vmax`` and step-change bound
    ``a``, braking in time for the position limits, never overshooting after a clamp. Any
    shapes that broadcast ([D] or [N, D]); what safety_node's limiter and the locomotion
    policy (which keeps inside it, so safety never has to clamp a walking gait) both run."""
    # Follow the target's own step, plus a catch-up on the lag that can still be braked to zero
    # before reaching it (no overshoot after a clamp).
    lag = prev_target - prev
    step = (target - prev_target) + np.sign(lag) * np.minimum(np.abs(lag), brake_step(np.abs(lag), a))
    step = np.clip(step, -brake_step(prev - lower, a), brake_step(upper - prev, a))
    step = np.clip(step, prev_step - a, prev_step + a)
    step = np.clip(step, -vmax, vmax)
    return np.clip(prev + step, lower, upper)


def check_times(times: np.ndarray) -> str | None:
    """Why ``times`` (time_from_start, s) is not a valid trajectory timing, or None."""
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        return "a trajectory needs at least one point"
    if not np.all(np.isfinite(t)):
        return f"time_from_start {t.tolist()} is not finite"
    if t[0] < 0:
        return f"time_from_start of point 0 is negative ({t[0]:g} s)"
    if np.any(np.diff(t) <= 0):
        i = int(np.argmax(np.diff(t) <= 0)) + 1
        return (f"time_from_start must strictly increase: point {i} at {t[i]:g} s follows point {i - 1} "
                f"at {t[i - 1]:g} s")
    return None


def check_trajectory(names: list[str], robot_names: list[str], times: np.ndarray, points: np.ndarray,
                     allow_partial: bool, max_s: float, robot: str) -> tuple[str, str] | None:
    """``(intervention kind, reason)`` for a trajectory a robot must refuse, or None: unknown or
    repeated joint names, left-out joints (unless ``allow_partial``), bad timing, points that do
    not match the names, or longer than ``max_s`` seconds."""
    unknown = [n for n in names if n not in robot_names]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if unknown or dupes:
        return ("joint_names_rejected", f"joint names {names}: " + (f"unknown {unknown} " if unknown else "")
                + (f"repeated {dupes} " if dupes else "") + f"(robot joints {robot_names})")
    missing = [n for n in robot_names if n not in names]
    if missing and not allow_partial:
        return ("joint_names_rejected", f"trajectory leaves out joint(s) {missing}; send every joint of "
                f"{robot!r} or set allow_partial_joints (the others then hold)")
    why = check_times(times)
    if why is None and (points.ndim != 2 or points.shape != (times.size, len(names))):
        why = f"trajectory points have shape {points.shape}, expected [{times.size}, {len(names)}]"
    if why is None and times[-1] > max_s:
        why = f"trajectory lasts {times[-1]:g} s, more than max_trajectory_s={max_s:g}"
    return None if why is None else ("malformed_rejected", why)


def on_grid(times: np.ndarray, dt: float) -> bool:
    """Whether ``times`` are exactly ``0, dt, 2 dt, ...`` (a policy's action chunk)."""
    t = np.asarray(times, dtype=np.float64)
    return bool(np.allclose(t, np.arange(t.size) * dt, atol=_TOL, rtol=0))


def resample(times: np.ndarray, positions: np.ndarray, start: np.ndarray, dt: float,
             velocities: np.ndarray | None = None, start_velocity: np.ndarray | None = None,
             has_velocity: np.ndarray | None = None) -> np.ndarray:
    """Waypoints ``positions [N, D]`` at ``times [N]`` -> setpoints ``[M, D]`` every ``dt``.

    ``velocities [N, D]`` (with ``has_velocity [N]`` bool, default all true when given) make the
    segments whose both ends have one cubic. ``check_times(times)`` must have passed.
    """
    t = np.asarray(times, dtype=np.float64)
    q = np.asarray(positions, dtype=np.float64)
    if on_grid(t, dt) and q.shape[0] == t.size:
        return q.copy()
    start = np.asarray(start, dtype=np.float64)
    d = start.shape[0]
    v = np.zeros_like(q) if velocities is None else np.asarray(velocities, dtype=np.float64)
    hv = np.zeros(t.size, bool) if velocities is None else (
        np.ones(t.size, bool) if has_velocity is None else np.asarray(has_velocity, bool))
    v0 = np.zeros(d) if start_velocity is None else np.asarray(start_velocity, dtype=np.float64)
    if t[0] > _TOL:  # the time-0 state is the current setpoint, always with its velocity
        t, q = np.concatenate([[0.0], t]), np.vstack([start[None], q])
        v, hv = np.vstack([v0[None], v]), np.concatenate([[True], hv])
    n_rows = int(math.ceil(t[-1] / dt - _TOL / dt)) + 1
    out = np.empty((n_rows, d))
    seg = 0
    for k in range(n_rows):
        tk = k * dt
        while seg < t.size - 1 and tk > t[seg + 1] - _TOL:
            seg += 1
        if seg == t.size - 1 or abs(tk - t[seg]) <= _TOL:
            out[k] = q[seg]  # on a waypoint (or past the last one): its value exactly
            continue
        t0, t1 = t[seg], t[seg + 1]
        h = t1 - t0
        s = (tk - t0) / h
        if hv[seg] and hv[seg + 1]:
            # Cubic Hermite basis on [0, 1]; velocities scaled by the segment's duration.
            h00, h10 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s
            h01, h11 = -2 * s**3 + 3 * s**2, s**3 - s**2
            out[k] = h00 * q[seg] + h10 * h * v[seg] + h01 * q[seg + 1] + h11 * h * v[seg + 1]
        else:
            out[k] = (1 - s) * q[seg] + s * q[seg + 1]
    return out


class SetpointLimiter:
    """``limited_step`` run period after period, for one robot (``[D]``) or a batch (``[N, D]``).

        lim = SetpointLimiter(spec, margin=0.9)
        lim.reset(q0)                  # start at rest at q0 ([D] or [N, D]; ``ids`` picks rows)
        q = lim(target)                # the setpoint for this period

    ``margin`` scales the spec's velocity and acceleration limits: below 1, what comes out is
    inside what safety_node enforces, so it passes unchanged."""

    def __init__(self, spec, margin: float = 0.9, dt: float | None = None):
        dt = spec.control_period if dt is None else dt  # another period: e.g. a 1 kHz inner loop
        self.vmax = margin * np.array(spec.limits("velocity")) * dt
        self.a = margin * np.array(spec.limits("acceleration")) * dt * dt
        self.lower = np.array(spec.limits("lower"))
        self.upper = np.array(spec.limits("upper"))
        self.prev = self.prev_step = self.prev_target = None

    def reset(self, q: np.ndarray, ids=None) -> None:
        q = np.clip(np.asarray(q, dtype=np.float64), self.lower, self.upper)
        if ids is None or self.prev is None:
            self.prev, self.prev_target = q.copy(), q.copy()
            self.prev_step = np.zeros_like(q)
        else:
            self.prev[ids], self.prev_target[ids], self.prev_step[ids] = q, q, 0.0

    def follow(self, q: np.ndarray) -> None:
        """The setpoint of this period was ``q`` (sent without the limiter): go on from it."""
        q = np.asarray(q, dtype=np.float64)
        if self.prev is None:
            self.reset(q)
            return
        self.prev_step, self.prev, self.prev_target = q - self.prev, q.copy(), q.copy()

    def __call__(self, target: np.ndarray) -> np.ndarray:
        target = np.clip(np.asarray(target, dtype=np.float64), self.lower, self.upper)
        out = limited_step(self.prev, self.prev_step, self.prev_target, target, self.lower, self.upper,
                           self.vmax, self.a)
        self.prev_step, self.prev, self.prev_target = out - self.prev, out, target
        return out

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

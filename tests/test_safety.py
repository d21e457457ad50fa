"""SafetySupervisor with a fake clock: rejection, clamping, limiting, watchdog, e-stop."""

from __future__ import annotations

import numpy as np
import pytest

from rosmind.errors import SpecError
from rosmind.safety import KINDS, SafetyConfig, SafetySupervisor, State
from rosmind.spec import load_spec

pytestmark = pytest.mark.unit

SPEC = load_spec("panda")
DT = SPEC.control_period  # 0.05 s
Q0 = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.02])
MAX_STEP = np.array(SPEC.limits("velocity")) * DT
MAX_DSTEP = np.array(SPEC.limits("acceleration")) * DT**2


class FakeClock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(measured=Q0, fk=None, **cfg):
    clock, logs = FakeClock(), []
    sup = SafetySupervisor(SPEC, SafetyConfig(**cfg), clock, logs.append, fk=fk)
    if measured is not None:
        sup.update_measured(measured)
    return sup, clock, logs


def nonzero_counts(sup):
    return {k: v for k, v in sup.counts.items() if v}


def test_nothing_forwarded_before_joint_states():
    sup, clock, _ = make(measured=None)
    assert sup.filter_command(Q0) is None
    assert sup.filter_trajectory(SPEC.joint_names, Q0[None], clock.t) is None
    assert nonzero_counts(sup) == {"no_joint_states": 2}
    assert "no joint_states" in sup.last_intervention
    assert sup.status()["level"] == "WARN"
    assert sup.tick(clock.t + 10) is None
    sup.update_measured(Q0)
    np.testing.assert_array_equal(sup.filter_command(Q0), Q0)


def test_nan_and_inf_reject_the_whole_message():
    sup, clock, _ = make()
    q = Q0.copy()
    q[2] = np.nan
    assert sup.filter_command(q) is None
    pts = np.tile(Q0, (5, 1))
    pts[3, 7] = np.inf
    assert sup.filter_trajectory(SPEC.joint_names, pts, clock.t) is None
    assert nonzero_counts(sup) == {"nan_rejected": 2}
    assert sup.state is State.STOPPED and sup.accepted == 0
    # Non-finite measurements are ignored, not adopted as a reference.
    bad = Q0.copy()
    bad[0] = np.nan
    sup.update_measured(bad)
    np.testing.assert_array_equal(sup.measured, Q0)


def test_position_clamped_to_limits_including_gripper():
    measured = Q0.copy()
    measured[3], measured[7] = -0.08, 0.038
    sup, _, _ = make(measured=measured)
    q = measured.copy()
    q[3], q[7] = 0.5, 0.06  # joint4 upper -0.0698; finger upper 0.04
    out = sup.filter_command(q)
    assert out is not None
    assert out[3] == pytest.approx(-0.0698) and out[7] == pytest.approx(0.04)
    assert sup.counts["position_clamped"] == 1
    assert np.all(out >= sup.lower) and np.all(out <= sup.upper)


def test_reject_mode_rejects_instead_of_clamping():
    sup, _, _ = make(mode="reject")
    q = Q0.copy()
    q[0] = 3.5
    assert sup.filter_command(q) is None
    assert sup.counts["position_clamped"] == 1 and "rejected" in sup.last_intervention
    q = Q0.copy()
    q[0] += 0.1  # from rest: within velocity (0.109) but over acceleration (0.0375) per step
    assert sup.filter_command(q) is None
    assert sup.counts["acceleration_limited"] == 1


def test_acceleration_limit_hand_computed():
    sup, clock, _ = make()
    target = Q0.copy()
    target[0] += 0.09  # joint1: v*dt = 0.10875, a*dt^2 = 0.0375
    out = sup.filter_trajectory(SPEC.joint_names, np.tile(target, (3, 1)), clock.t)
    # step 0: 0.09 clipped to 0.0375 (from rest). Step 1: lag 0.0525; the fastest step that can
    # still stop in time: 2 steps c, c - 0.0375 summing to 0.0525 -> c = 0.045. Step 2: 0.0075.
    np.testing.assert_allclose(out[:, 0], [0.0375, 0.0825, 0.09], atol=1e-12)
    np.testing.assert_array_equal(out[:, 1:], np.tile(Q0[1:], (3, 1)))
    assert nonzero_counts(sup) == {"acceleration_limited": 1}


def test_velocity_and_acceleration_limits_hold_for_a_fast_chunk():
    sup, clock, _ = make()
    ramp = Q0 + np.outer(np.arange(1, 11) * 0.14, np.r_[np.ones(7), 0.0])
    ramp[:, 3] = np.minimum(ramp[:, 3], -0.1)
    out = sup.filter_trajectory(SPEC.joint_names, ramp, clock.t)
    assert out is not None and out.shape == ramp.shape
    steps = np.diff(np.vstack([Q0, out]), axis=0)
    assert np.all(np.abs(steps) <= MAX_STEP + 1e-9)
    assert np.all(np.abs(np.diff(np.vstack([np.zeros(8), steps]), axis=0)) <= MAX_DSTEP + 1e-9)
    assert sup.counts["velocity_limited"] == 1 and sup.counts["acceleration_limited"] == 1


def test_smooth_chunk_passes_unchanged():
    sup, clock, _ = make()
    steps = np.minimum(np.arange(1, 9), 3) * 0.005  # accelerate gently to 0.3 rad/s
    chunk = Q0 + np.outer(np.cumsum(steps), np.r_[1.0, 0, 1.0, 0, 1.0, 0, 1.0, 0])
    out = sup.filter_trajectory(SPEC.joint_names, chunk, clock.t)
    np.testing.assert_array_equal(out, chunk)
    assert sup.interventions_total == 0 and sup.state is State.ARMED
    # The next chunk, one tick later, continues from the plan at the same velocity: no clamp.
    clock.t += DT
    nxt = chunk[1:] + 0.0
    assert np.array_equal(sup.filter_trajectory(SPEC.joint_names, nxt, clock.t), nxt)
    assert sup.interventions_total == 0


def test_single_commands_keep_their_velocity_between_messages():
    sup, clock, _ = make()
    q = Q0.copy()
    sent = []
    for k in range(12):  # accelerate joint1 by 0.03 rad/tick^2 up to 0.09 rad/tick
        clock.t += DT
        q = q.copy()
        q[0] += min(k + 1, 3) * 0.03
        sent.append(sup.filter_command(q))
        sup.update_measured(sent[-1])  # a robot that tracks its setpoint
    assert all(s is not None for s in sent)
    np.testing.assert_allclose(sent[-1], q)
    assert sup.interventions_total == 0


def test_jump_rejected():
    sup, clock, _ = make()
    q = Q0.copy()
    q[1] += 0.3  # STOPPED at start: re-arming tolerance 0.2 rad from the measured position
    assert sup.filter_command(q) is None
    assert sup.counts["jump_rejected"] == 1 and "measured position" in sup.last_intervention
    assert sup.filter_command(Q0) is not None and sup.state is State.ARMED
    clock.t += DT
    q = Q0.copy()
    q[1] += 0.3  # ARMED: max_jump 0.5 -> allowed but limited
    out = sup.filter_command(q)
    assert out is not None and abs(out[1] - Q0[1]) <= MAX_STEP[1] + 1e-12
    clock.t += DT
    q = out.copy()
    q[4] -= 0.6
    assert sup.filter_command(q) is None
    assert sup.counts["jump_rejected"] == 2
    chunk = np.tile(out, (5, 1))
    chunk[3:, 2] += 0.6  # a jump inside the chunk
    assert sup.filter_trajectory(SPEC.joint_names, chunk, clock.t) is None
    assert sup.counts["jump_rejected"] == 3 and "point 3" in sup.last_intervention


def test_joint_name_permutation_is_reordered():
    sup, clock, _ = make()
    names = SPEC.joint_names[::-1]
    chunk = np.tile(Q0, (4, 1))
    chunk[:, 0] += np.array([0.01, 0.02, 0.03, 0.04])
    out = sup.filter_trajectory(names, chunk[:, ::-1], clock.t)
    np.testing.assert_allclose(out, chunk)


@pytest.mark.parametrize("names", [
    SPEC.joint_names[:-1],
    SPEC.joint_names[:-1] + ["panda_finger_joint2"],
    SPEC.joint_names[:-1] + [SPEC.joint_names[0]],
])
def test_wrong_joint_names_rejected(names):
    sup, clock, _ = make()
    pts = np.tile(Q0[: len(names)], (2, 1))
    assert sup.filter_trajectory(names, pts, clock.t) is None
    assert nonzero_counts(sup) == {"joint_names_rejected": 1}


def test_wrong_command_length_and_empty_chunk_rejected():
    sup, clock, _ = make()
    assert sup.filter_command(Q0[:7]) is None
    assert sup.filter_trajectory(SPEC.joint_names, np.zeros((0, 8)), clock.t) is None
    assert nonzero_counts(sup) == {"joint_names_rejected": 1, "malformed_rejected": 1}


def test_watchdog_holds_then_stops():
    sup, clock, _ = make()
    t0 = clock.t
    cmd = Q0 + 0.004
    assert sup.filter_command(cmd) is not None
    assert sup.tick(t0 + 2 * DT) is None and sup.state is State.ARMED
    hold = sup.tick(t0 + 3 * DT)  # watchdog_hold_periods = 3
    np.testing.assert_allclose(hold, cmd)
    assert sup.state is State.HOLDING and sup.counts["watchdog_hold"] == 1
    assert sup.tick(t0 + 5 * DT) is None  # emitted once, on the transition
    measured = Q0 + 0.008
    sup.update_measured(measured)
    assert sup.tick(t0 + 0.49) is None
    stop = sup.tick(t0 + 0.5)  # watchdog_stop_timeout_s = 0.5
    np.testing.assert_array_equal(stop, measured)
    assert sup.state is State.STOPPED and sup.counts["watchdog_stop"] == 1
    assert sup.tick(t0 + 5.0) is None
    assert sup.status(t0 + 0.5)["values"]["command_age_ms"] == pytest.approx(500.0)
    # Stopped: only a command near the measured position re-arms.
    clock.t = t0 + 1.0
    assert sup.filter_command(measured + 0.25) is None
    assert sup.filter_command(measured + 0.01) is not None and sup.state is State.ARMED


def test_watchdog_counts_from_the_end_of_a_chunk():
    sup, clock, _ = make()
    t0 = clock.t
    chunk = np.tile(Q0, (10, 1))
    chunk[:, 0] += np.linspace(0.0, 0.1, 10)
    assert sup.filter_trajectory(SPEC.joint_names, chunk, t0) is not None
    assert sup.tick(t0 + 9 * DT + 2 * DT) is None  # last point at t0 + 0.45
    np.testing.assert_allclose(sup.tick(t0 + 9 * DT + 3 * DT), chunk[-1])
    assert sup.state is State.HOLDING


def test_late_tick_goes_straight_to_stopped():
    sup, clock, _ = make()
    sup.filter_command(Q0)
    np.testing.assert_array_equal(sup.tick(clock.t + 2.0), Q0)
    assert sup.state is State.STOPPED
    assert sup.counts["watchdog_hold"] == 1 and sup.counts["watchdog_stop"] == 1


def test_holding_accepts_a_new_command():
    sup, clock, _ = make()
    sup.filter_command(Q0)
    sup.tick(clock.t + 4 * DT)
    assert sup.state is State.HOLDING
    clock.t += 5 * DT
    assert sup.filter_command(Q0 + 0.01) is not None and sup.state is State.ARMED


def test_estop_latches_until_reset():
    sup, clock, _ = make()
    assert sup.filter_command(Q0) is not None
    measured = Q0 + 0.003
    sup.update_measured(measured)
    np.testing.assert_array_equal(sup.estop(), measured)
    assert sup.state is State.ESTOP and sup.status()["level"] == "ERROR"
    assert sup.estop() is None  # already latched: nothing new
    clock.t += DT
    assert sup.filter_command(measured) is None
    assert sup.filter_trajectory(SPEC.joint_names, measured[None], clock.t) is None
    assert sup.tick(clock.t + 10) is None and sup.state is State.ESTOP
    assert sup.counts["estop"] == 3  # the latch + two rejected commands
    setpoint, message = sup.reset()
    np.testing.assert_array_equal(setpoint, measured)
    assert "ESTOP" in message and sup.state is State.ARMED
    clock.t += DT
    assert sup.filter_command(measured + 0.01) is not None


def test_setpoints_from_the_measured_position_stay_inside_the_limits():
    # A simulated finger at its open stop reads 0.04 + 1e-6: stop, e-stop and reset hold the
    # measured position, and none of them may command past a limit (tests/test_faults_ros.py saw it).
    hi = np.array(SPEC.limits("upper"))
    over = Q0.copy()
    over[7] = hi[7] + 1e-6
    over[3] = hi[3] + 0.01  # pushed past a soft limit by more
    inside = np.clip(over, SPEC.limits("lower"), hi)
    sup, clock, _ = make(measured=over)
    assert sup.filter_command(inside) is not None
    np.testing.assert_array_equal(sup.tick(clock.t + 2.0), inside)  # watchdog stop
    assert sup.state is State.STOPPED
    np.testing.assert_array_equal(sup.estop(), inside)
    setpoint, _ = sup.reset()
    np.testing.assert_array_equal(setpoint, inside)
    clock.t += DT
    assert sup.filter_command(inside) is not None and sup.state is State.ARMED


def test_reset_needs_joint_states():
    sup, _, _ = make(measured=None)
    sup.estop()
    setpoint, message = sup.reset()
    assert setpoint is None and "joint_states" in message and sup.state is State.ESTOP


def test_counters_and_status():
    sup, clock, logs = make()
    sup.filter_command(np.full(8, np.nan))
    sup.filter_command(Q0[:3])
    q = Q0.copy()
    q[5] = 9.0
    sup.filter_command(q)
    st = sup.status()
    v = st["values"]
    assert set(KINDS) <= set(v)
    assert v["interventions_total"] == 4 == sup.interventions_total
    assert v["nan_rejected"] == 1 and v["joint_names_rejected"] == 1
    assert v["position_clamped"] == 1 and v["jump_rejected"] == 1  # 9.0 clamps to 3.75: a jump
    assert v["last_intervention"].startswith("jump_rejected")
    assert v["state"] == "STOPPED" and v["command_age_ms"] == -1.0
    assert v["workspace_enforced"] is False
    assert v["joint_states_received"] is True and v["joint_states_age_ms"] == 0.0
    assert len(logs) == 4
    clock.t += 2.0
    st = sup.status()
    assert st["level"] == "WARN" and "stale" in st["message"]
    assert st["values"]["joint_states_age_ms"] == pytest.approx(2000.0)


def test_logging_is_throttled_per_kind():
    sup, clock, logs = make()
    for _ in range(10):
        sup.filter_command(np.full(8, np.inf))
    assert sup.counts["nan_rejected"] == 10 and len(logs) == 1
    clock.t += 1.0
    sup.filter_command(np.full(8, np.inf))
    assert len(logs) == 2 and "x11" in logs[-1]


def test_workspace_with_injected_fk():
    def fk(q):  # toy kinematics: x follows joint1
        return np.array([q[0], 0.0, 0.3])

    inside = Q0.copy()
    inside[0] = 0.16
    sup, clock, _ = make(measured=inside, fk=fk)
    assert sup.workspace_active
    q = inside.copy()
    q[0] = 0.14  # x = 0.14 < 0.15
    assert sup.filter_command(q) is None and sup.counts["workspace_rejected"] == 1
    assert sup.filter_command(inside) is not None
    outside = Q0.copy()
    outside[0] = 0.1
    sup2, _, _ = make(measured=outside, fk=fk)
    q = outside.copy()
    q[0] = 0.11  # still outside, but moving back in: allowed
    assert sup2.filter_command(q) is not None
    q[0] = 0.09
    clock.t += DT
    assert sup2.filter_command(q) is None


def test_workspace_off_without_fk_or_when_disabled():
    sup, _, _ = make()
    assert not sup.workspace_active
    sup2, _, _ = make(fk=lambda q: np.zeros(3), enforce_workspace=False)
    assert not sup2.workspace_active and sup2.filter_command(Q0) is not None


def test_random_commands_never_leave_the_limits():
    rng = np.random.default_rng(0)
    sup, clock, _ = make()
    setpoints, accepted = [Q0.copy()], [True]
    for k in range(400):
        clock.t += DT
        q = setpoints[-1] + rng.normal(0.0, 0.15, 8)
        if k % 17 == 0:
            q[rng.integers(8)] = rng.choice([np.nan, np.inf, 50.0])
        out = sup.filter_command(q)
        setpoints.append(setpoints[-1] if out is None else out)
        sup.update_measured(setpoints[-1])
        accepted.append(out is not None)
    s = np.array(setpoints)
    assert np.all(np.isfinite(s))
    assert np.all(s >= sup.lower - 1e-12) and np.all(s <= sup.upper + 1e-12)
    steps = np.diff(s, axis=0)
    assert np.all(np.abs(steps) <= MAX_STEP + 1e-9)
    # The robot holds through a rejected command (an unavoidable stop); every accepted command
    # continues from what the robot was really doing, held ticks included.
    dsteps = np.abs(np.diff(steps, axis=0))[np.array(accepted[2:])]
    assert np.all(dsteps <= MAX_DSTEP + 1e-9)
    assert sup.accepted > 300 and sup.counts["velocity_limited"] > 0


@pytest.mark.parametrize("kwargs", [
    {"watchdog_hold_periods": 0}, {"watchdog_stop_timeout_s": float("nan")},
    {"max_jump_rad": -1.0}, {"rearm_tolerance_rad": 0.6}, {"mode": "ignore"}, {"robot": ""},
])
def test_config_validation(kwargs):
    with pytest.raises(SpecError, match="SafetyConfig"):
        SafetyConfig(**kwargs)


def test_stop_timeout_must_exceed_hold_time():
    with pytest.raises(SpecError, match="watchdog_stop_timeout_s"):
        SafetySupervisor(SPEC, SafetyConfig(watchdog_stop_timeout_s=0.1), FakeClock())


def test_brakes_in_time_for_a_position_limit():
    start = Q0.copy()
    start[3] = -0.9  # joint4, upper limit -0.0698
    sup, clock, _ = make(measured=start)
    out = [start]
    for _ in range(40):  # keep asking for 0.15 rad more: full speed into the limit
        clock.t += DT
        q = out[-1].copy()
        q[3] += 0.15
        out.append(sup.filter_command(q))
        sup.update_measured(out[-1])
    s = np.array(out)[:, 3]
    steps = np.diff(s)
    assert s[-1] == pytest.approx(SPEC.joints[3].upper) and np.all(s <= SPEC.joints[3].upper)
    assert np.all(np.abs(steps) <= MAX_STEP[3] + 1e-9)
    assert np.all(np.abs(np.diff(steps)) <= MAX_DSTEP[3] + 1e-9)  # no wall-stop
    assert steps.max() == pytest.approx(MAX_STEP[3])  # it did reach full speed


def test_rereferences_when_the_robot_was_moved_externally():
    sup, clock, _ = make()
    assert sup.filter_command(Q0) is not None
    moved = Q0.copy()
    moved[0] = 1.2  # e.g. the sim reset the arm to another start pose
    sup.update_measured(moved)
    clock.t += DT
    np.testing.assert_array_equal(sup.filter_command(moved), moved)
    assert sup.interventions_total == 0 and sup.state is State.ARMED
    clock.t += DT
    far = moved.copy()
    far[0] = 1.5
    assert sup.filter_command(moved + 0.001) is not None  # now the plan is back on the robot
    assert sup.filter_command(far + 0.3) is None

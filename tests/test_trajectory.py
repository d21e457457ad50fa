"""JointTrajectory semantics (ros2_control's joint_trajectory_controller) on the control grid:
the resampler against hand-computed values, and the safety core taking trajectories as
MoveIt, rqt and ``ros2 topic pub`` send them."""

from __future__ import annotations

import numpy as np
import pytest

from rosmind.safety import SafetyConfig, SafetySupervisor
from rosmind.spec import load_spec
from rosmind.trajectory import check_times, on_grid, resample

pytestmark = pytest.mark.unit

SPEC = load_spec("panda")
NAMES = SPEC.joint_names
DT = SPEC.control_period  # 0.05 s
Q0 = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.02])


def test_a_chunk_on_the_grid_comes_back_bit_for_bit():
    pts = np.random.default_rng(0).normal(size=(16, 3))
    times = np.arange(16) * DT
    assert on_grid(times, DT)
    out = resample(times, pts, np.zeros(3), DT)
    assert np.array_equal(out, pts)


def test_one_waypoint_is_reached_linearly_from_the_start():
    start, goal = np.array([0.0, 1.0]), np.array([1.0, -1.0])
    out = resample(np.array([1.0]), goal[None], start, DT)
    assert out.shape == (21, 2)  # 0, 0.05, ..., 1.0 s
    np.testing.assert_allclose(out[0], start)
    np.testing.assert_allclose(out[5], start + 0.25 * (goal - start))  # a hand-computed quarter
    assert np.array_equal(out[-1], goal)


def test_off_grid_times_round_up_and_hold_the_last_waypoint_exactly():
    out = resample(np.array([0.12, 0.33]), np.array([[1.0], [2.0]]), np.zeros(1), DT)
    assert out.shape == (8, 1)  # ceil(0.33 / 0.05) = 7 -> rows 0..7
    np.testing.assert_allclose(out[:, 0], [0, 0.05 / 0.12, 0.1 / 0.12, 1 + 0.03 / 0.21, 1 + 0.08 / 0.21,
                                          1 + 0.13 / 0.21, 1 + 0.18 / 0.21, 2.0])


def test_velocities_make_cubic_hermite_segments():
    # From rest at 0 to 1 rad in 1 s, ending at rest: the smoothstep 3 s^2 - 2 s^3.
    out = resample(np.array([1.0]), np.array([[1.0]]), np.zeros(1), DT, velocities=np.zeros((1, 1)),
                   start_velocity=np.zeros(1))
    s = np.arange(21) * DT
    np.testing.assert_allclose(out[:, 0], 3 * s**2 - 2 * s**3, atol=1e-12)
    # A given end velocity: p(s) = h00*0 + h01*1 + h11*h*v1 with h = 1, v1 = 2 at s = 0.5.
    mid = resample(np.array([1.0]), np.array([[1.0]]), np.zeros(1), DT, np.array([[2.0]]))[10, 0]
    assert mid == pytest.approx(0.5 + (0.125 - 0.25) * 2.0)
    # A waypoint without velocities makes its segments linear.
    lin = resample(np.array([0.5, 1.0]), np.array([[1.0], [2.0]]), np.zeros(1), DT,
                   np.zeros((2, 1)), has_velocity=np.array([True, False]))
    np.testing.assert_allclose(lin[15, 0], 1.5)


@pytest.mark.parametrize("times, msg", [
    ([], "at least one point"), ([0.5, 0.5], "strictly increase"), ([0.3, 0.2], "point 1 at 0.2"),
    ([-0.1], "negative"), ([float("nan")], "not finite"),
])
def test_bad_timings_are_named(times, msg):
    assert msg in check_times(np.array(times, dtype=float))


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def supervisor(**cfg):
    logs: list[str] = []
    sup = SafetySupervisor(SPEC, SafetyConfig(enforce_workspace=False, **cfg), Clock(), log=logs.append)
    sup.update_measured(Q0)
    return sup, logs


def test_ros2_topic_pub_style_one_waypoint_at_one_second_is_accepted():
    sup, logs = supervisor()
    goal = Q0 + np.r_[np.full(7, 0.1), 0.0]
    out = sup.filter_timed_trajectory(NAMES, np.array([1.0]), goal[None], stamp=0.0)
    assert out is not None, logs
    assert out.shape == (21, 8)
    np.testing.assert_allclose(out[0], Q0)
    np.testing.assert_allclose(out[-1], goal, atol=1e-9)
    steps = np.abs(np.diff(out, axis=0))
    assert steps.max() <= np.max(SPEC.limits("velocity")) * DT + 1e-9


def test_moveit_style_trajectory_any_joint_order_with_velocities():
    sup, logs = supervisor()
    order = NAMES[::-1]
    times = np.array([0.0, 0.4, 0.8])
    way = np.stack([Q0, Q0 + 0.05 * np.r_[np.ones(7), 0], Q0 + 0.1 * np.r_[np.ones(7), 0]])
    vel = np.stack([np.zeros(8), 0.125 * np.r_[np.ones(7), 0], np.zeros(8)])
    out = sup.filter_timed_trajectory(order, times, way[:, ::-1], 0.0, vel[:, ::-1])
    assert out is not None, logs
    assert out.shape == (17, 8)
    np.testing.assert_allclose(out[8], way[1], atol=1e-12)  # on the waypoints, in spec order
    np.testing.assert_allclose(out[16], way[2], atol=1e-12)
    assert sup.interventions_total == 0


def test_partial_joint_sets_are_refused_by_name_unless_allowed():
    sup, logs = supervisor()
    arm = NAMES[:7]
    assert sup.filter_timed_trajectory(arm, np.array([0.5]), (Q0[:7] + 0.05)[None], 0.0) is None
    assert "leaves out joint(s) ['panda_finger_joint1']" in sup.last_intervention
    assert sup.counts["joint_names_rejected"] == 1
    sup, logs = supervisor(allow_partial_joints=True)
    out = sup.filter_timed_trajectory(arm, np.array([0.5]), (Q0[:7] + 0.05)[None], 0.0)
    assert out is not None, logs
    np.testing.assert_allclose(out[:, 7], Q0[7])  # the finger holds
    np.testing.assert_allclose(out[-1, :7], Q0[:7] + 0.05)


@pytest.mark.parametrize("names, times, pts, kind, msg", [
    (NAMES[:-1] + ["gripper"], [0.5], None, "joint_names_rejected", "unknown ['gripper']"),
    (NAMES[:-1] + [NAMES[0]], [0.5], None, "joint_names_rejected", "repeated ['panda_joint1']"),
    (NAMES, [0.5, 0.5], None, "malformed_rejected", "strictly increase"),
    (NAMES, [120.0], None, "malformed_rejected", "max_trajectory_s"),
    (NAMES, [0.5], np.full((1, 8), np.nan), "nan_rejected", "non-finite position"),
])
def test_bad_trajectories_are_refused_and_nothing_is_sent(names, times, pts, kind, msg):
    sup, _ = supervisor()
    t = np.array(times)
    p = np.tile(Q0, (len(t), 1)) if pts is None else pts
    assert sup.filter_timed_trajectory(names, t, p, 0.0) is None
    assert sup.counts[kind] == 1 and msg in sup.last_intervention, sup.last_intervention
    assert sup.plan is None and sup.accepted == 0


def test_limits_apply_after_resampling():
    sup, _ = supervisor()
    goal = Q0 + np.r_[0.3, np.zeros(7)]  # 0.3 rad in 0.1 s: 3 rad/s, above 2.175 rad/s
    out = sup.filter_timed_trajectory(NAMES, np.array([0.1]), goal[None], 0.0)
    assert out is not None
    assert np.abs(np.diff(out[:, 0])).max() <= SPEC.joints[0].velocity * DT + 1e-9
    assert sup.counts["velocity_limited"] == 1

"""Teleop core: deadman, scaling, IK steps that move the EE the commanded way, limits, gripper."""

from __future__ import annotations

import numpy as np
import pytest

from rosmind.errors import SpecError
from rosmind.sim.experts import REST_POSE
from rosmind.spec import load_spec
from rosmind.teleop import (
    TeleopCommand,
    TeleopConfig,
    TeleopController,
    make_kinematics,
    quat_from_rotvec,
    quat_mul,
    scale_twist,
)

SPEC = load_spec("panda")
Q0 = np.r_[REST_POSE, 0.04]
DT = SPEC.control_period


@pytest.fixture(scope="module")
def kin():
    k = make_kinematics(SPEC)
    yield k
    k.close()


def _cmd(twist=(0, 0, 0, 0, 0, 0), deadman=True, **kw) -> TeleopCommand:
    return TeleopCommand(twist=np.asarray(twist, dtype=float), deadman=deadman, **kw)


def _drive(ctl: TeleopController, twist, ticks: int, q=Q0) -> np.ndarray:
    """Engage at ``q``, then ``ticks`` ticks of ``twist``; the robot tracks exactly. -> [ticks+1, D]."""
    out = [ctl.step(_cmd(), q)]
    for _ in range(ticks):
        out.append(ctl.step(_cmd(twist), out[-1]))
    return np.array(out)


@pytest.mark.unit
def test_scale_twist_deadband_and_speeds():
    cfg = TeleopConfig(max_linear_mps=0.2, max_angular_rps=1.0, deadband=0.1)
    v = scale_twist(np.array([1.0, -0.55, 0.05, 0.0, 2.0, -1.0]), cfg)
    # (|a| - 0.1) / 0.9: 1 -> 1, 0.55 -> 0.5, 0.05 -> 0 (deadband); 2 clipped to 1.
    np.testing.assert_allclose(v, [0.2, -0.1, 0.0, 0.0, 1.0, -1.0])


@pytest.mark.unit
def test_command_sanitizes_and_config_validates():
    c = TeleopCommand(twist=[np.nan, 3.0, -np.inf, 0, 0, 0.5], gripper=float("nan"))
    np.testing.assert_array_equal(c.twist, [0, 1, 0, 0, 0, 0.5])
    assert c.gripper is None
    with pytest.raises(ValueError, match="6 values"):
        TeleopCommand(twist=[1, 2, 3])
    for bad in ({"max_linear_mps": 0}, {"deadband": 1.0}, {"limit_margin": 1.5},
                {"max_angular_rps": float("nan")}):
        with pytest.raises(SpecError, match=next(iter(bad))):
            TeleopConfig(**bad)


@pytest.mark.unit
def test_quaternion_helpers():
    qz = quat_from_rotvec([0, 0, np.pi / 2])
    np.testing.assert_allclose(qz, [0, 0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-12)
    np.testing.assert_allclose(quat_mul(qz, qz), [0, 0, 1, 0], atol=1e-12)  # 180 deg about z


@pytest.mark.sim
def test_deadman_gates_every_command(kin):
    ctl = TeleopController(SPEC, kin=kin)
    assert ctl.step(None, Q0) is None  # no device
    assert ctl.step(_cmd((1, 0, 0, 0, 0, 0), deadman=False), Q0) is None
    assert ctl.step(_cmd(), None) is None  # no joint_states yet
    first = ctl.step(_cmd((1, 0, 0, 0, 0, 0)), Q0)
    np.testing.assert_array_equal(first, Q0)  # engaging sends the measured pose: safety re-arms
    moved = ctl.step(_cmd((1, 0, 0, 0, 0, 0)), first)
    assert np.max(np.abs(moved - Q0)) > 1e-4
    assert ctl.step(_cmd((1, 0, 0, 0, 0, 0), deadman=False), moved) is None
    assert not ctl.engaged
    # Re-engaging anchors at the *measured* joints, wherever the robot settled meanwhile.
    settled = Q0 + np.r_[0.05, -0.03, 0, 0.02, 0, 0, 0, 0]
    np.testing.assert_array_equal(ctl.step(_cmd(), settled), settled)


@pytest.mark.sim
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_ik_step_moves_ee_in_commanded_direction(kin, axis, sign):
    cfg = TeleopConfig(max_linear_mps=0.1, deadband=0.0)
    ctl = TeleopController(SPEC, cfg, kin=kin)
    twist = np.zeros(6)
    twist[axis] = sign
    qs = _drive(ctl, twist, 20)
    p0, r0 = kin.fk_pose(qs[0][:7])
    p1, r1 = kin.fk_pose(qs[-1][:7])
    d = p1 - p0
    want = np.zeros(3)
    want[axis] = sign
    assert d @ want / np.linalg.norm(d) > 0.98, d
    # 20 ticks at 0.1 m/s = 0.1 m; the joint acceleration ramp costs a few ticks.
    assert 0.06 < np.linalg.norm(d) <= 0.1 + 1e-3, d
    assert abs(abs(np.dot(r0, r1)) - 1) < 1e-3  # orientation held


@pytest.mark.sim
def test_yaw_twist_rotates_about_base_z_and_steps_respect_limits(kin):
    cfg = TeleopConfig(max_angular_rps=0.5, deadband=0.0)
    ctl = TeleopController(SPEC, cfg, kin=kin)
    qs = _drive(ctl, (0, 0, 0, 0, 0, 1.0), 30)
    p0, r0 = kin.fk_pose(qs[0][:7])
    p1, r1 = kin.fk_pose(qs[-1][:7])
    # r1 = exp(theta z) * r0 -> the relative rotation r1 * r0^-1 is about +z.
    rel = quat_mul(r1, np.r_[-r0[:3], r0[3]])
    angle = 2 * np.arctan2(np.linalg.norm(rel[:3]), rel[3])
    assert rel[2] / np.linalg.norm(rel[:3]) > 0.99 and 0.4 < angle <= 0.75 + 1e-3, (rel, angle)
    assert np.linalg.norm(p1 - p0) < 0.01
    vel = np.diff(qs, axis=0) / DT
    acc = np.diff(vel, axis=0) / DT
    assert np.all(np.abs(vel) <= np.array(SPEC.limits("velocity")) * cfg.limit_margin + 1e-9)
    assert np.all(np.abs(acc) <= np.array(SPEC.limits("acceleration")) * cfg.limit_margin + 1e-6)


@pytest.mark.sim
def test_target_stays_in_workspace_and_does_not_wind_up(kin):
    ctl = TeleopController(SPEC, TeleopConfig(max_linear_mps=0.3), kin=kin)
    qs = _drive(ctl, (0, 0, -1, 0, 0, 0), 60)  # 0.9 m down: far below the table
    z = kin.fk_pose(qs[-1][:7])[0][2]
    assert SPEC.workspace.min[2] <= z < SPEC.workspace.min[2] + 0.03
    # Going back up reacts at once: the target never ran away below the box.
    up = [ctl.step(_cmd((0, 0, 1, 0, 0, 0)), qs[-1])]
    for _ in range(10):
        up.append(ctl.step(_cmd((0, 0, 1, 0, 0, 0)), up[-1]))
    assert kin.fk_pose(up[-1][:7])[0][2] > z + 0.02


@pytest.mark.sim
def test_gripper_toggle_and_absolute(kin):
    ctl = TeleopController(SPEC, kin=kin)
    q = ctl.step(_cmd(), Q0)
    assert ctl.gripper == 0.0  # measured fingers open
    q = ctl.step(_cmd(buttons=("gripper_toggle",)), q)
    assert ctl.gripper == 1.0
    widths = [q[7]]
    for _ in range(30):
        q = ctl.step(_cmd(), q)
        widths.append(q[7])
    assert widths[-1] == pytest.approx(0.0, abs=1e-9)  # closed
    assert np.all(np.diff(widths) <= 1e-12)  # monotone, rate-limited
    assert np.max(np.abs(np.diff(widths))) <= SPEC.joints[7].velocity * DT + 1e-12
    q = ctl.step(_cmd(gripper=0.5), q)
    for _ in range(20):
        q = ctl.step(_cmd(), q)
    assert q[7] == pytest.approx(0.02, abs=1e-6)
    ctl.step(_cmd(buttons=("gripper_open",)), q)
    assert ctl.gripper == 0.0


@pytest.mark.unit
def test_robot_without_kinematics_is_a_user_error():
    with pytest.raises(SpecError, match="no kinematics model for robot 'a1'"):
        make_kinematics(load_spec("a1"))


@pytest.mark.unit
def test_shipped_teleop_launch_file_parses(repo):
    from rosmind.launch import load_launch

    plan = load_launch(repo / "launch" / "sim_teleop.launch.yaml",
                       {"device_options": "{port: 9000}", "out_dir": "/tmp/x"})
    nodes = {n.executable: n for n in plan.nodes}
    assert set(nodes) == {"robot_node", "safety_node", "teleop_node", "recorder_node"}
    teleop = {k: v for _, k, v in nodes["teleop_node"].params}
    assert teleop["device"] == "web" and teleop["device_options"] == "{port: 9000}"
    robot = {k: v for _, k, v in nodes["robot_node"].params}
    assert robot["mode"] == "realtime" and robot["cameras"] is True
    rec = {k: v for _, k, v in nodes["recorder_node"].params}
    assert rec["out_dir"] == "/tmp/x" and {"teleop/events", "safety/commands"} <= set(rec["topics"])


def test_joint_mode_follows_a_leader_within_the_limits():
    """A leader arm's joints (TeleopCommand.joints): no kinematics needed, the first command is
    the measured pose, then per-tick steps toward the leader within the velocity limit; a
    non-finite reading sends nothing."""
    spec = load_spec("so100")
    ctl = TeleopController(spec, joint_mode=True)
    measured = np.array([0.1, 0.0, 0.0, 0.0, 0.0, 0.5])
    leader = np.array([1.0, -0.5, 0.0, 0.0, 0.0, 0.5])
    first = ctl.step(TeleopCommand(deadman=True, joints=leader), measured)
    np.testing.assert_allclose(first, measured)
    vmax = np.array(spec.limits("velocity")) * spec.control_period
    prev, q = first, first
    for _ in range(200):
        q = ctl.step(TeleopCommand(deadman=True, joints=leader), measured)
        assert np.all(np.abs(q - prev) <= vmax + 1e-9)
        prev = q
    np.testing.assert_allclose(q, leader, atol=1e-6)
    assert ctl.step(TeleopCommand(deadman=True, joints=[np.nan] * 6), measured) is None
    assert ctl.step(TeleopCommand(deadman=False, joints=leader), measured) is None and not ctl.engaged
    with pytest.raises(SpecError, match="sent 3 joints"):
        ctl.step(TeleopCommand(deadman=True, joints=[0.0, 0.0, 0.0]), measured)

"""PyBullet sims (rosmind.sim): determinism, limits, sensors, tasks, registries."""

from __future__ import annotations

import math

import numpy as np
import pybullet as p
import pytest

from rosmind.errors import SpecError, UnknownNameError
from rosmind.sim.robots import A1Sim, PandaSim, make_sim
from rosmind.sim.world import substeps_for


def _drive(sim, seed: int, ticks: int) -> list[dict]:
    """Reset to ``seed`` and follow seeded random wiggles around the first setpoint."""
    rng = np.random.default_rng(1000 + seed)
    obs = [sim.reset(seed)]
    base = sim.setpoint.copy()
    for _ in range(ticks):
        sim.write(base + rng.normal(0, 0.05, base.shape))
        sim.step()
        obs.append(sim.read())
    return obs


def _assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for t, (oa, ob) in enumerate(zip(a, b, strict=True)):
        assert oa.keys() == ob.keys()
        for k in oa:
            assert np.array_equal(oa[k], ob[k]), f"tick {t} key {k} differs"


@pytest.mark.unit
def test_substeps_make_whole_control_periods():
    assert substeps_for(20) == (12, 1 / 240)
    n, dt = substeps_for(50)
    assert n == 5 and math.isclose(n * dt, 1 / 50) and dt <= 1 / 240


@pytest.mark.sim
@pytest.mark.parametrize("robot", ["panda", "a1"])
def test_same_seed_bit_identical_and_finite(robot):
    """Two sims in one process, stepped interleaved, and a re-reset: identical, never NaN."""
    with make_sim(robot) as a, make_sim(robot) as b:
        assert a.world.cid != b.world.cid
        rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
        obs_a, obs_b = [a.reset(3)], [b.reset(3)]
        base = a.setpoint.copy()
        for _ in range(40):
            for sim, rng, log in ((a, rng_a, obs_a), (b, rng_b, obs_b)):
                sim.write(base + rng.normal(0, 0.05, base.shape))
                sim.step()
                log.append(sim.read())
        _assert_same(obs_a, obs_b)
        _assert_same(_drive(a, 3, 40), _drive(a, 3, 40))
        for o in obs_a:
            for k, v in o.items():
                assert np.all(np.isfinite(v)), f"{robot} {k} not finite"


@pytest.mark.sim
def test_panda_seeds_change_the_task_and_layout_is_sane():
    with make_sim("panda", "pick_place") as sim:
        cfg = sim.task.config
        cubes = []
        for seed in range(5):
            obs = sim.reset(seed)
            cube, goal = obs["object_poses"][0], obs["goal_pose"]
            assert obs["object_poses"].shape == (1, 7) and goal.shape == (7,)
            assert np.hypot(*(cube[:2] - goal[:2])) >= cfg.min_goal_distance - 1e-9
            assert abs(cube[2] - cfg.cube_size / 2) < 1e-3
            assert cfg.cube_x[0] <= cube[0] <= cfg.cube_x[1]
            cubes.append(cube)
        assert len({tuple(np.round(c, 6)) for c in cubes}) == 5
        obs = sim.reset(0)
        # Home pose: gripper pointing straight down, between base and cube region.
        r = np.asarray(p.getMatrixFromQuaternion(obs["ee_pose"][3:])).reshape(3, 3)
        assert r[:, 2] @ np.array([0, 0, -1.0]) > 0.999
        assert obs["joint_pos"].shape == (8,) and obs["wrench"].shape == (6,)
        for _ in range(5):
            sim.step()
        # The F/T sensor carries the hand and fingers (~1 kg): a clearly nonzero force.
        assert np.linalg.norm(sim.read()["wrench"][:3]) > 5.0
        assert sim.time == pytest.approx(5 / 20)


@pytest.mark.sim
def test_write_clips_to_spec_and_refuses_garbage():
    with make_sim("panda") as sim:
        spec = sim.spec
        hi = np.array(spec.limits("upper")) + 1.0
        assert np.array_equal(sim.write(hi), np.array(spec.limits("upper")))
        lo = np.array(spec.limits("lower")) - 1.0
        assert np.array_equal(sim.write(lo), np.array(spec.limits("lower")))
        before = sim.setpoint.copy()
        bad = np.zeros(8)
        bad[2] = np.nan
        with pytest.raises(SpecError, match="panda_joint3"):
            sim.write(bad)
        with pytest.raises(SpecError, match="expected 8"):
            sim.write(np.zeros(7))
        assert np.array_equal(sim.setpoint, before)


@pytest.mark.sim
def test_panda_tracks_a_setpoint():
    with make_sim("panda") as sim:
        q = sim.read()["joint_pos"].copy()
        q[0] += 0.3
        q[7] = 0.01
        sim.write(q)
        for _ in range(20):
            sim.step()
        assert np.allclose(sim.read()["joint_pos"], q, atol=0.01)


@pytest.mark.sim
def test_render_shapes_dtypes_depth():
    with make_sim("panda") as sim:
        sim.reset(0)
        for name in ("wrist", "gripper", "scene"):
            w, h = sim.spec.sensor(name).resolution
            rgb, depth = sim.render(name)
            assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
            assert depth.shape == (h, w) and depth.dtype == np.float32
            cam = sim.cameras[name]
            assert np.all(depth >= cam.near - 1e-4) and np.all(depth <= cam.far + 1e-4)
            assert rgb.std() > 5  # not a blank frame
            k = sim.camera_intrinsics(name)
            assert (k["width"], k["height"], k["cx"], k["cy"]) == (w, h, (w - 1) / 2, h / 2 - 1)
            assert k["fx"] == pytest.approx(0.5 * h / math.tan(math.radians(cam.fov_deg) / 2))
        # Scene camera: eye (0.9, 0, 0.55) looking at (0.48, 0, 0) on the table, down at ~53
        # degrees; the central ray meets the table there, hypot(0.42, 0.55) = 0.692 m away.
        # (Cube moved out of the way first.)
        assert (sim.SCENE_EYE, sim.SCENE_TARGET) == ((0.9, 0.0, 0.55), (0.48, 0.0, 0.0))
        p.resetBasePositionAndOrientation(sim.task.cube, [0.5, 0.8, 0.03], [0, 0, 0, 1],
                                          physicsClientId=sim.world.cid)
        _, depth = sim.render("scene")
        centre = depth[depth.shape[0] // 2 - 1: depth.shape[0] // 2 + 1,
                       depth.shape[1] // 2 - 1: depth.shape[1] // 2 + 1].mean()
        assert centre == pytest.approx(math.hypot(0.42, 0.55), abs=0.01)
        # The wrist camera looks down from ~0.5 m at the table.
        _, depth = sim.render("wrist")
        assert 0.3 < float(np.median(depth)) < 0.7
        with pytest.raises(SpecError, match="no sensor 'nose'"):
            sim.render("nose")


@pytest.mark.sim
def test_gripper_camera_sees_both_fingers_the_wrist_camera_does_not():
    """Each finger's centre, projected through the camera's pose and intrinsics, lands in the
    gripper camera's picture (and is what the depth there shows: not hidden) and outside the
    wrist camera's."""
    from rosmind.pointcloud import intrinsics_of

    with make_sim("panda", "pick_place") as sim:
        sim.reset(3)

        def pixels(name):
            fx, fy, cx, cy = intrinsics_of(sim.camera_intrinsics(name))
            to_cam = np.linalg.inv(sim.camera_pose(name))
            out = []
            for link in sim.finger_links:
                lo, hi = p.getAABB(sim.body, link, physicsClientId=sim.world.cid)
                pos, _ = sim.world_to_base((np.add(lo, hi) / 2).tolist(), [0, 0, 0, 1])
                x, y, z = (to_cam @ np.append(pos, 1.0))[:3]
                out.append((fx * x / z + cx, fy * y / z + cy, z))
            return out

        w, h = sim.spec.sensor("gripper").resolution
        _, depth = sim.render("gripper")
        for u, v, z in pixels("gripper"):
            assert 0 <= u < w and 0 <= v < h and z > 0, (u, v, z)
            assert abs(float(depth[int(round(v)), int(round(u))]) - z) < 0.015, (depth[int(round(v)), int(round(u))], z)
        w, h = sim.spec.sensor("wrist").resolution
        for u, v, z in pixels("wrist"):
            assert not (0 <= u < w and 0 <= v < h and z > 0), (u, v, z)


@pytest.mark.sim
def test_pick_place_success_needs_cube_on_goal_and_released():
    with make_sim("panda", "pick_place", hold_ticks=2) as sim:
        sim.reset(4)
        st = sim.task_status()
        assert {k: st[k] for k in ("success", "done", "time_limit")} == {"success": False, "done": False,
                                                                        "time_limit": 10.0}
        cube, goal = sim.read()["object_poses"][0], sim.read()["goal_pose"]
        assert st["error"] == pytest.approx(np.hypot(*(cube[:2] - goal[:2])), abs=1e-9)
        assert st["error"] >= 0.12 - 1e-6  # min_goal_distance
        pos, quat = sim.base_to_world(goal[:3], [0, 0, 0, 1])
        p.resetBasePositionAndOrientation(sim.task.cube, pos, quat, physicsClientId=sim.world.cid)
        sim.step()
        assert not sim.task_status()["success"]  # held for 1 tick only
        sim.step()
        assert sim.task_status()["success"] and sim.task_status()["done"]
        assert sim.task_status()["error"] < 1e-3
        # Lifted off the table: not placed.
        p.resetBasePositionAndOrientation(sim.task.cube, [pos[0], pos[1], 0.2], quat,
                                          physicsClientId=sim.world.cid)
        assert not sim.task.placed(sim)


@pytest.mark.sim
def test_a1_stands_up_and_stays_standing():
    with make_sim("a1", "stand") as sim:
        obs = sim.reset(0)
        assert obs["odom_pose"][2] < 0.2  # starts folded on the ground
        heights = []
        while not sim.task_status()["done"]:
            sim.step()
            heights.append(sim.read()["odom_pose"][2])
        obs = sim.read()
        assert sim.task_status()["success"]
        assert sim.time == pytest.approx(3.0)
        late = np.array(heights[len(heights) // 2:])
        assert 0.25 < late.min() and late.max() < 0.35 and np.ptp(late) < 0.01
        assert obs["imu_linear_acceleration"] == pytest.approx([0, 0, 9.81], abs=0.3)
        assert np.abs(obs["imu_angular_velocity"]).max() < 0.05
        assert obs["imu_orientation"].shape == (4,) and obs["odom_twist"].shape == (6,)
        assert obs["joint_pos"].shape == (12,)


@pytest.mark.sim
def test_connect_disconnect_idempotent_and_context_manager():
    sim = PandaSim()
    sim.connect()
    sim.connect()
    cid = sim.world.cid
    sim.disconnect()
    sim.disconnect()
    assert not sim.world.connected
    with sim:
        assert sim.world.connected and sim.read()["joint_pos"].shape == (8,)
    assert not sim.world.connected
    assert cid is not None


@pytest.mark.unit
def test_names_and_options_are_checked():
    with pytest.raises(UnknownNameError, match="unknown robot 'ur5'"):
        make_sim("ur5", "pick_place")
    with pytest.raises(UnknownNameError, match="unknown task 'juggle'"):
        make_sim("panda", "juggle")
    with pytest.raises(SpecError, match="StandTask is for a quadruped; 'panda' is of kind 'arm'"):
        make_sim("panda", "stand")
    with pytest.raises(SpecError, match="unknown option"):
        make_sim("panda", "pick_place", cube_colour="red")
    with pytest.raises(SpecError, match="cube_size"):
        make_sim("panda", "pick_place", cube_size=0.2)
    assert isinstance(make_sim("a1"), A1Sim)

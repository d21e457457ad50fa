"""Point clouds from depth: the geometry against a synthetic plane and against the sim's cube."""

from __future__ import annotations

import numpy as np
import pytest

from rosmind.pointcloud import depth_to_points, intrinsics_of, optical_pose, voxel_downsample


def _plane_depth(h: int, w: int, k: dict, T: np.ndarray, z_plane: float) -> np.ndarray:
    """Depth image of the plane z = z_plane (base frame) seen by a camera at T: ray casting."""
    v, u = np.mgrid[0:h, 0:w]
    rays = np.stack([(u - k["cx"]) / k["fx"], (v - k["cy"]) / k["fy"], np.ones_like(u, dtype=float)], -1)
    dirs = rays @ T[:3, :3].T
    t = (z_plane - T[2, 3]) / dirs[..., 2]  # scale of the ray with unit optical z: the depth
    return np.where(t > 0, t, np.nan).astype(np.float32)


K = {"fx": 80.0, "fy": 80.0, "cx": 31.5, "cy": 23.5}


@pytest.mark.unit
def test_a_tilted_camera_recovers_a_plane_and_crop_and_voxel_behave():
    T = optical_pose([0.9, 0.1, 0.55], [0.45, 0.0, 0.0], [0, 0, 1])
    depth = _plane_depth(48, 64, K, T, 0.02)
    depth[0, 0] = np.nan
    depth[0, 1] = 0.0
    pts, cols = depth_to_points(depth, K, T, rgb=np.full((48, 64, 3), 7, np.uint8))
    assert pts.shape == (48 * 64 - 2, 3) and cols.shape == pts.shape
    np.testing.assert_allclose(pts[:, 2], 0.02, atol=1e-5)
    # uint16 millimetres (RealSense Z16) give the same points to within a millimetre of depth.
    mm = np.nan_to_num(np.rint(depth * 1000), nan=0).astype(np.uint16)
    pts_mm, _ = depth_to_points(mm, K, T)
    assert len(pts_mm) == len(pts)
    np.testing.assert_allclose(pts_mm[:, 2], 0.02, atol=2e-3)
    box = ([0.3, -0.1, -0.1], [0.6, 0.1, 0.1])
    cropped, _ = depth_to_points(depth, K, T, crop=box)
    assert 0 < len(cropped) < len(pts)
    assert np.all(cropped >= np.array(box[0]) - 1e-6) and np.all(cropped <= np.array(box[1]) + 1e-6)
    down, dcols = voxel_downsample(pts, 0.05, cols)
    assert 0 < len(down) < len(pts) and np.all(dcols == 7)
    np.testing.assert_allclose(down[:, 2], 0.02, atol=1e-5)


@pytest.mark.unit
def test_bad_inputs_name_the_problem():
    T = np.eye(4)
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        depth_to_points(np.zeros((4, 4, 1)), K, T)
    with pytest.raises(ValueError, match="4x4"):
        depth_to_points(np.ones((4, 4)), K, np.eye(3))
    with pytest.raises(ValueError, match="differ in size"):
        depth_to_points(np.ones((4, 4)), K, T, rgb=np.zeros((5, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="focal"):
        intrinsics_of([0, 0, 1, 0, 0, 1, 0, 0, 1])
    assert intrinsics_of([80, 0, 31.5, 0, 81, 23.5, 0, 0, 1]) == (80, 81, 31.5, 23.5)


@pytest.mark.sim
@pytest.mark.parametrize("camera", ["scene", "wrist"])
def test_sim_depth_puts_the_cube_top_on_its_true_plane(camera):
    from rosmind.sim.robots import make_sim
    from rosmind.sim.world import quat_to_matrix

    with make_sim("panda", "pick_place") as sim:
        for seed in (0, 1, 2):
            sim.reset(seed)
            rgb, depth = sim.render(camera)
            pts, cols = depth_to_points(depth, sim.camera_intrinsics(camera), sim.camera_pose(camera), rgb=rgb)
            cube = sim.task.cube_pose(sim)
            half = sim.task.config.cube_size / 2
            local = (pts - cube[:3]) @ quat_to_matrix(cube[3:])  # points in the cube's frame
            inside = np.all(np.abs(local[:, :2]) < half - 0.005, axis=1)
            top = inside & (np.abs(local[:, 2] - half) < 0.01)
            assert top.sum() >= 10, f"seed {seed}: only {top.sum()} points on the cube's top face"
            err = np.abs(local[top, 2] - half)
            assert err.max() < 2e-3, f"seed {seed} {camera}: top-face points up to {err.max() * 1e3:.2f} mm off"
            # They are the cube's colour (red), not the table's.
            assert np.all(cols[top][:, 0] > 120) and np.all(cols[top][:, 1] < 100)
            table = np.abs(pts[:, 2]) < 0.005
            assert table.sum() > 100

"""Depth image + CameraInfo + camera pose -> a point cloud in the robot's base frame.

    pts, rgb = depth_to_points(depth, intrinsics, T_base_cam, rgb=image,
                               crop=(spec.workspace.min, spec.workspace.max), voxel=0.005)

One function for the sim, the real cameras and the ROS node (``camera/<name>/points``).
Conventions (REP 103/105, OpenCV/CameraInfo):

- ``depth`` ``[H, W]`` in metres along the optical axis (z), NaN/0/inf = no return; a uint16
  image is millimetres (RealSense Z16).
- ``intrinsics``: ``fx fy cx cy`` with pixel centres at integer coordinates (column ``u`` at
  ``u``), a dict, a CameraInfo-like object (``k``), or a 3x3 ``K``.
- ``T_base_cam`` ``[4, 4]``: the pose of the camera's *optical* frame (x right, y down, z
  forward) in the base frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def intrinsics_of(k) -> tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` from a dict, a 3x3 K, or a CameraInfo (its row-major ``k``)."""
    if isinstance(k, dict):
        return float(k["fx"]), float(k["fy"]), float(k["cx"]), float(k["cy"])
    kk = getattr(k, "k", k)
    a = np.asarray(kk, dtype=np.float64).reshape(-1)
    if a.size != 9:
        raise ValueError(f"intrinsics: expected fx/fy/cx/cy or a 3x3 K, got {a.size} values")
    if not (a[0] > 0 and a[4] > 0):
        raise ValueError(f"intrinsics: focal lengths must be positive, got fx={a[0]}, fy={a[4]}")
    return float(a[0]), float(a[4]), float(a[2]), float(a[5])


def depth_metres(depth: np.ndarray) -> np.ndarray:
    d = np.asarray(depth)
    if d.ndim != 2:
        raise ValueError(f"depth: expected an [H, W] image, got shape {list(d.shape)}")
    if d.dtype == np.uint16:
        m = d.astype(np.float32) * 1e-3
        m[d == 0] = np.nan
        return m
    return d.astype(np.float32, copy=False)


def voxel_downsample(points: np.ndarray, voxel: float, colors: np.ndarray | None = None):
    """The mean point (and colour) of each occupied ``voxel``-sized cube, in a stable order."""
    if voxel <= 0:
        raise ValueError(f"voxel: must be > 0, got {voxel}")
    if len(points) == 0:
        return points, colors
    cells = np.floor(points / voxel).astype(np.int64)
    _, inverse, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)

    def mean(a):
        out = np.zeros((len(counts), a.shape[1]), dtype=np.float64)
        np.add.at(out, inverse, a)
        return out / counts[:, None]

    pts = mean(points.astype(np.float64)).astype(np.float32)
    cols = None if colors is None else np.rint(mean(colors.astype(np.float64))).astype(np.uint8)
    return pts, cols


def depth_to_points(depth: np.ndarray, intrinsics, T_base_cam: np.ndarray, rgb: np.ndarray | None = None,
                    crop: tuple[Sequence[float], Sequence[float]] | None = None, voxel: float | None = None,
                    max_range: float | None = None):
    """``[N, 3]`` float32 points in the base frame, and their ``[N, 3]`` uint8 colours (or None).

    Pixels without a finite positive depth (or beyond ``max_range``) are dropped; ``crop``
    keeps points inside the axis-aligned box ``(min xyz, max xyz)`` of the base frame; ``voxel``
    (m) averages the points of each voxel.
    """
    d = depth_metres(depth)
    h, w = d.shape
    fx, fy, cx, cy = intrinsics_of(intrinsics)
    T = np.asarray(T_base_cam, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"T_base_cam: expected a 4x4 transform, got shape {list(T.shape)}")
    if rgb is not None and np.asarray(rgb).shape[:2] != (h, w):
        raise ValueError(f"rgb {list(np.asarray(rgb).shape)} and depth {[h, w]} differ in size")
    valid = np.isfinite(d) & (d > 0)
    if max_range is not None:
        valid &= d <= max_range
    v, u = np.nonzero(valid)
    z = d[v, u].astype(np.float64)
    cam = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=1)
    pts = cam @ T[:3, :3].T + T[:3, 3]
    cols = None if rgb is None else np.asarray(rgb)[v, u, :3].astype(np.uint8)
    if crop is not None:
        lo, hi = (np.asarray(c, dtype=np.float64) for c in crop)
        keep = np.all((pts >= lo) & (pts <= hi), axis=1)
        pts = pts[keep]
        cols = None if cols is None else cols[keep]
    pts = pts.astype(np.float32)
    if voxel:
        pts, cols = voxel_downsample(pts, voxel, cols)
    return pts, cols


def optical_pose(eye, target, up) -> np.ndarray:
    """4x4 pose of a camera's optical frame (x right, y down, z forward) at ``eye`` looking at
    ``target`` with ``up`` roughly up in the image; all in one frame."""
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    n = np.linalg.norm(x)
    if n < 1e-9:
        raise ValueError("optical_pose: 'up' is parallel to the viewing direction")
    x /= n
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T

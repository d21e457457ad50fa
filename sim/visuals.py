"""Image domain randomization: what the cameras see changes, the physics does not.

Fields of a task's config (``VisualOptions`` is a base of e.g. ``PickPlaceConfig``), so they are
``--task-option``s of ``collect``/``eval`` and ``task_options:=`` of robot_node; all off by
default. Fixed values (``light_direction``, ``camera_offset``...) make a named perturbation for
robustness tests; the ``*_jitter`` fields draw fresh values every episode. Every draw comes
from the episode's generator *after* the task has laid out its objects, so the same seed
gives the same cube and target with or without randomization. Distractors are visual only
(no collision shape): they change the pictures, never the contacts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pybullet as p

from rosmind.errors import SpecError

if TYPE_CHECKING:
    from .robots import BulletRobot

DISTRACTOR_COLOURS = ((0.15, 0.3, 0.85), (0.9, 0.8, 0.1), (0.55, 0.2, 0.7), (0.35, 0.35, 0.35), (0.95, 0.5, 0.1))


@dataclass
class VisualOptions:
    # Light: direction (x, y, z) in the world frame, (0, 0, 0) = PyBullet's default; RGB colour.
    light_direction: tuple[float, float, float] = (0.0, 0.0, 0.0)
    light_color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    light_jitter_deg: float = 0.0  # per episode: the light turned by up to this angle
    light_color_jitter: float = 0.0  # per episode: each light channel scaled by 1 +- this
    color_jitter: float = 0.0  # per episode: each RGB channel of cube, target and table +- this
    # Every camera moved in its own optical frame (x right, y down, z forward):
    # dx dy dz in metres, then rotations about its x, y, z axes in degrees.
    camera_offset: tuple[float, float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    camera_jitter_m: float = 0.0  # per episode, per axis, uniform +- this
    camera_jitter_deg: float = 0.0
    distractors: int = 0  # visual-only objects on the table, away from the cube and the target

    def __post_init__(self):
        name = type(self).__name__
        for f in ("light_jitter_deg", "light_color_jitter", "color_jitter", "camera_jitter_m", "camera_jitter_deg"):
            v = getattr(self, f)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise SpecError(f"{name}.{f}: must be a finite number >= 0, got {v!r}")
        for f, n in (("light_direction", 3), ("light_color", 3), ("camera_offset", 6)):
            v = tuple(float(x) for x in getattr(self, f))
            if len(v) != n or not all(math.isfinite(x) for x in v):
                raise SpecError(f"{name}.{f}: expected {n} finite numbers, got {getattr(self, f)!r}")
            setattr(self, f, v)
        if not (isinstance(self.distractors, int) and 0 <= self.distractors <= 8):
            raise SpecError(f"{name}.distractors: an integer 0..8, got {self.distractors!r}")

    def randomizes(self) -> bool:
        return any((self.light_jitter_deg, self.light_color_jitter, self.color_jitter, self.camera_jitter_m,
                    self.camera_jitter_deg))


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    """Rotation matrix of x, then y, then z rotations (radians), about fixed axes."""
    cx, sx, cy, sy, cz, sz = math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


class SceneLook:
    """One episode's draw of ``VisualOptions``: light, camera offset, colours, distractors."""

    def __init__(self, opts: VisualOptions, rng: np.random.Generator | None):
        self.opts = opts
        o = opts
        offset = np.asarray(o.camera_offset, dtype=np.float64)
        light_dir = np.asarray(o.light_direction, dtype=np.float64)
        light_col = np.asarray(o.light_color, dtype=np.float64)
        self.colour_delta = np.zeros((3, 3))  # cube, target, table
        if rng is not None and o.randomizes():
            offset = offset + np.concatenate([rng.uniform(-1, 1, 3) * o.camera_jitter_m,
                                              rng.uniform(-1, 1, 3) * o.camera_jitter_deg])
            if o.light_jitter_deg:
                base = light_dir if np.any(light_dir) else np.array([0.0, 0.0, 1.0])
                r = _rotation(*np.radians(rng.uniform(-1, 1, 3) * o.light_jitter_deg))
                light_dir = r @ base
            light_col = light_col * (1 + rng.uniform(-1, 1, 3) * o.light_color_jitter)
            self.colour_delta = rng.uniform(-1, 1, (3, 3)) * o.color_jitter
        self.moves = bool(np.any(offset))
        self.cam_shift = offset[:3]
        self.cam_rot = _rotation(*np.radians(offset[3:]))
        self.light: dict = {}
        if np.any(light_dir):
            self.light["lightDirection"] = [float(x) for x in light_dir]
        if np.any(light_col != 1.0):
            self.light["lightColor"] = [float(x) for x in np.clip(light_col, 0, 2)]

    def colour(self, which: int, rgba) -> list[float]:
        rgb = np.clip(np.asarray(rgba[:3], dtype=np.float64) + self.colour_delta[which], 0, 1)
        return [*map(float, rgb), float(rgba[3])]

    def move_camera(self, eye, target, up):
        """``(eye, target, up)`` with the offset applied in the camera's optical frame."""
        if not self.moves:
            return eye, target, up
        eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
        z = target - eye
        dist = np.linalg.norm(z)
        z /= dist
        x = np.cross(z, up)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        frame = np.stack([x, y, z], axis=1)  # optical frame axes in the world
        rot = frame @ self.cam_rot @ frame.T
        new_eye = eye + frame @ self.cam_shift
        return new_eye, new_eye + rot @ (z * dist), rot @ up

    def add_distractors(self, sim: BulletRobot, rng: np.random.Generator, keep_clear: list, region) -> None:
        cid = sim.world.cid
        (x0, x1), (y0, y1) = region
        for i in range(self.opts.distractors):
            for _ in range(200):
                x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
                if all(math.hypot(x - cx, y - cy) >= 0.08 for cx, cy in keep_clear):
                    break
            size = rng.uniform(0.015, 0.025)
            colour = [*DISTRACTOR_COLOURS[int(rng.integers(len(DISTRACTOR_COLOURS)))], 1.0]
            if i % 2:
                vis = p.createVisualShape(p.GEOM_CYLINDER, radius=size, length=2 * size, rgbaColor=colour,
                                          physicsClientId=cid)
            else:
                vis = p.createVisualShape(p.GEOM_BOX, halfExtents=[size] * 3, rgbaColor=colour, physicsClientId=cid)
            pos, quat = sim.base_to_world([x, y, size], p.getQuaternionFromEuler([0, 0, rng.uniform(-math.pi, math.pi)]))
            p.createMultiBody(0, -1, vis, pos, quat, physicsClientId=cid)
            keep_clear.append((x, y))

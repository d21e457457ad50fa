"""A headless PyBullet world: one physics client per instance, fixed small time step.

Every PyBullet call made through a ``World`` passes its own ``physicsClientId``, so several
worlds in one process never interfere. ``World.build()`` wipes the client
(``resetSimulation``) and rebuilds from scratch: a reset is a fresh world, which is what makes
episodes bit-identical under a seed.

Camera conventions (used by ``render`` and ``intrinsics``): a pinhole with square pixels, the
vertical field of view ``fov_deg``, principal point at the image centre (pixel centres at integer coordinates, as CameraInfo has
it; see ``CameraModel.intrinsics``), depth in metres along
the optical axis (linearized from the OpenGL depth buffer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet as p
import pybullet_data

PHYSICS_HZ = 240.0
RENDERERS = ("tiny", "egl")
GRAVITY = -9.81


def substeps_for(control_rate_hz: float) -> tuple[int, float]:
    """Physics substeps per control period and the time step that makes them exact.

    ``240 / rate`` substeps of 1/240 s when that is a whole number (Panda at 20 Hz: 12). When it
    is not (A1 at 50 Hz: 4.8), round up and shrink the step so that the control period is still
    an exact number of steps (5 steps of 1/250 s); the step never exceeds 1/240 s.
    """
    n = max(1, math.ceil(PHYSICS_HZ / control_rate_hz - 1e-9))
    return n, 1.0 / (control_rate_hz * n)


@dataclass(frozen=True)
class CameraModel:
    """A pinhole camera: ``width`` x ``height`` pixels, vertical field of view, clip planes."""

    width: int
    height: int
    fov_deg: float = 58.0
    near: float = 0.01
    far: float = 3.0

    def intrinsics(self) -> dict[str, float]:
        fy = 0.5 * self.height / math.tan(math.radians(self.fov_deg) / 2)
        # OpenCV/CameraInfo convention: pixel centres at integer coordinates, so the centre is
        # at (W - 1) / 2. PyBullet's rendered rows sit half a pixel lower than that (measured:
        # with cy = H / 2 - 1 the table plane comes back at z = 0.000 mm at 96, 128 and 384
        # rows; with (H - 1) / 2 at +2.2, +1.7 and +0.55 mm).
        return {"width": self.width, "height": self.height, "fx": fy, "fy": fy,
                "cx": (self.width - 1) / 2.0, "cy": self.height / 2.0 - 1.0}

    def projection(self) -> list[float]:
        return p.computeProjectionMatrixFOV(self.fov_deg, self.width / self.height, self.near, self.far)


class World:
    """One PyBullet DIRECT client. ``connect()``/``disconnect()`` are idempotent.

    ``renderer``: ``"tiny"`` (PyBullet's CPU TinyRenderer, the default) or ``"egl"`` (its
    eglRenderer plugin: OpenGL through EGL, here Mesa's llvmpipe software rasterizer; measured
    slower than TinyRenderer on this model, see ``rosmind bench render``).
    """

    def __init__(self, control_rate_hz: float, renderer: str = "tiny"):
        if renderer not in RENDERERS:
            raise ValueError(f"renderer must be one of {RENDERERS}, got {renderer!r}")
        self.substeps, self.dt = substeps_for(control_rate_hz)
        self.renderer = renderer
        self.cid: int | None = None
        self._egl = -1

    @property
    def connected(self) -> bool:
        return self.cid is not None

    def connect(self) -> None:
        if self.cid is None:
            self.cid = p.connect(p.DIRECT)
            self._egl = -1

    def _renderer_flag(self) -> int:
        if self.renderer == "tiny":
            return p.ER_TINY_RENDERER
        if self._egl < 0:
            import pkgutil

            loader = pkgutil.get_loader("eglRenderer")
            if loader is None:
                raise RuntimeError("renderer 'egl': PyBullet's eglRenderer plugin is not installed")
            self._egl = p.loadPlugin(loader.get_filename(), "_eglRendererPlugin", physicsClientId=self.cid)
            if self._egl < 0:
                raise RuntimeError("renderer 'egl': the eglRenderer plugin did not load (no EGL/GL library?)")
        return p.ER_BULLET_HARDWARE_OPENGL

    def disconnect(self) -> None:
        if self.cid is not None:
            try:
                p.disconnect(physicsClientId=self.cid)
            finally:
                self.cid = None

    def build(self) -> int:
        """Wipe the world; set time step, gravity, determinism; load the ground plane (its id)."""
        self.connect()
        cid = self.cid
        p.resetSimulation(physicsClientId=cid)
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=cid)
        p.setPhysicsEngineParameter(fixedTimeStep=self.dt, numSubSteps=0, numSolverIterations=50,
                                    deterministicOverlappingPairs=1, physicsClientId=cid)
        p.setGravity(0, 0, GRAVITY, physicsClientId=cid)
        return p.loadURDF("plane.urdf", physicsClientId=cid)

    def step(self, n: int | None = None) -> None:
        for _ in range(self.substeps if n is None else n):
            p.stepSimulation(physicsClientId=self.cid)

    def render(self, cam: CameraModel, eye, target, up, light: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Image from ``eye`` looking at ``target``: (rgb[H,W,3] uint8, depth[H,W] f32 m).
        ``light``: ``lightDirection``/``lightColor`` for getCameraImage (None: its defaults)."""
        flag = self._renderer_flag()
        view = p.computeViewMatrix(list(map(float, eye)), list(map(float, target)), list(map(float, up)))
        _, _, rgba, zbuf, _ = p.getCameraImage(
            cam.width, cam.height, viewMatrix=view, projectionMatrix=cam.projection(),
            renderer=flag, flags=p.ER_NO_SEGMENTATION_MASK, physicsClientId=self.cid, **(light or {}))
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(cam.height, cam.width, 4)[..., :3].copy()
        z = np.asarray(zbuf, dtype=np.float64).reshape(cam.height, cam.width)
        depth = cam.far * cam.near / (cam.far - (cam.far - cam.near) * z)
        return rgb, depth.astype(np.float32)


def quat_to_matrix(q) -> np.ndarray:
    """3x3 rotation matrix of a quaternion ``qx qy qz qw``."""
    return np.asarray(p.getMatrixFromQuaternion(list(map(float, q))), dtype=np.float64).reshape(3, 3)


def pose7(pos, quat) -> np.ndarray:
    """``[x y z qx qy qz qw]`` as float64, with the quaternion's sign fixed to ``qw >= 0``."""
    q = np.asarray(quat, dtype=np.float64)
    if q[3] < 0:
        q = -q
    return np.concatenate([np.asarray(pos, dtype=np.float64), q])

"""Camera observations for in-process episodes, on the schedule the ROS graph uses.

    sim = CameraObservations(make_sim("panda", "pick_place"), ("wrist", "scene"))
    obs = sim.reset(0)     # + camera/wrist/rgb [96, 96, 3] uint8, camera/scene/rgb [96, 128, 3]

A camera renders on control ticks ``k`` with ``k % schema.camera_every == 0`` (its own rate, as
robot_node publishes it) and its newest frame is held in between, so a policy trained on
collected frames sees in process exactly what a lockstep policy_node is given. Only the named
cameras are rendered (``cameras_of(obs_keys)``: those a policy reads). ``depth=True`` adds
``camera/<name>/depth`` [H, W] float32 metres (the colour camera's own depth, RealSense-aligned).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from rosmind.robot import Observation
from rosmind.schema import camera_every, camera_name

from .wrap import SimWrapper


def rgb_key(camera: str) -> str:
    return f"camera/{camera}/rgb"


def depth_key(camera: str) -> str:
    return f"camera/{camera}/depth"


def cameras_of(keys: Iterable[str]) -> tuple[str, ...]:
    """Camera names that observation ``keys`` need, in first-seen order."""
    out: list[str] = []
    for k in keys:
        name = camera_name(k)
        if name and name not in out:
            out.append(name)
    return tuple(out)


def checkpoint_cameras(checkpoint) -> tuple[str, ...]:
    """The cameras a checkpoint reads (robot_node renders these and no others); () for none."""
    if not checkpoint:
        return ()
    from rosmind.checkpoint import read_manifest

    return cameras_of(read_manifest(checkpoint).get("config", {}).get("obs_keys", []))


class CameraObservations(SimWrapper):
    """Wraps a SimRobot so that ``reset``/``read`` carry camera frames (wrap, don't subclass)."""

    def __init__(self, sim, cameras: Iterable[str], depth: bool = False):
        super().__init__(sim)
        self.camera_names, self.depth = tuple(cameras), depth
        for c in self.camera_names:
            sim.spec.sensor(c)  # an unknown camera fails here, naming the robot's sensors
        self._every = {c: camera_every(sim.spec, c) for c in self.camera_names}
        self._frames: dict[str, np.ndarray] = {}
        self._t0 = 0.0

    def tick(self) -> int:
        """Control periods of sim time since the last reset."""
        return int(round((self.sim.time - self._t0) * self.sim.spec.control_rate_hz))

    def _with_frames(self, obs: Observation) -> Observation:
        k = self.tick()
        for c in self.camera_names:
            if k % self._every[c] == 0 or rgb_key(c) not in self._frames:
                rgb, depth = self.sim.render(c)
                self._frames[rgb_key(c)] = rgb
                if self.depth:
                    self._frames[depth_key(c)] = depth
        out = dict(obs)
        out.update(self._frames)
        return out

    def reset(self, seed: int | None = None) -> Observation:
        obs = self.sim.reset(seed)
        self._frames.clear()
        self._t0 = self.sim.time
        return self._with_frames(obs)

    def read(self) -> Observation:
        return self._with_frames(self.sim.read())


def with_cameras(sim, cameras: Iterable[str], depth: bool = False):
    """``sim`` itself when no camera is asked for, else ``CameraObservations(sim, ...)``."""
    cameras = tuple(cameras)
    return CameraObservations(sim, cameras, depth) if cameras or depth else sim

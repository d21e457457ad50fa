"""The GPU-parallel path: the same MJCF stepped by MuJoCo Warp (``mujoco-warp``), behind
``Batch``'s interface, so ``LocomotionEnv(..., physics="warp")`` runs unchanged on it.

    batch = WarpBatch(model, nworld=4096, device="cuda:0")   # or "cpu" (slow: tests only)
    states, sensors = batch.step(state, control)              # as Batch.step

MuJoCo Warp keeps every world on the device in float32; a step copies the worlds' qpos, qvel
and targets in, runs ``nsub`` physics steps, and copies qpos, qvel and sensors out after each.
Per-world model randomization (friction, mass, motor strength) is not carried over to this
path: one shared model (``randomize`` then covers pushes and latency only; the env refuses
model randomization here rather than silently dropping it).
"""

from __future__ import annotations

import mujoco
import numpy as np

from .batch import STATE_SPEC, full_states


class WarpBatch:
    def __init__(self, model: mujoco.MjModel, nworld: int, device: str | None = None):
        import mujoco_warp as mjw
        import warp as wp

        self.mjw, self.wp = mjw, wp
        wp.init()
        self.device = device or ("cuda:0" if wp.is_cuda_available() else "cpu")
        self.model = model
        self.nworld = nworld
        m = model
        self.nstate = mujoco.mj_stateSize(m, STATE_SPEC)
        self.qpos = slice(1, 1 + m.nq)
        self.qvel = slice(1 + m.nq, 1 + m.nq + m.nv)
        with wp.ScopedDevice(self.device):
            self.m = mjw.put_model(m)
            host = mujoco.MjData(m)
            mujoco.mj_forward(m, host)
            self.d = mjw.put_data(m, host, nworld=nworld)

    def __len__(self) -> int:
        return self.nworld

    def initial_state(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        return full_states(self.model, qpos, qvel)

    def step(self, state: np.ndarray, control: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, nsub = control.shape[:2]
        if n != self.nworld or state.shape != (n, self.nstate):
            raise ValueError(f"WarpBatch.step: {self.nworld} worlds, got state {state.shape} and control {control.shape}")
        wp, mjw, d = self.wp, self.mjw, self.d
        states = np.repeat(state[:, None, :], nsub, axis=1)
        sensors = np.empty((n, nsub, self.model.nsensordata))
        with wp.ScopedDevice(self.device):
            d.qpos.assign(state[:, self.qpos].astype(np.float32))
            d.qvel.assign(state[:, self.qvel].astype(np.float32))
            d.time.assign(state[:, 0].astype(np.float32))
            for k in range(nsub):
                d.ctrl.assign(control[:, k].astype(np.float32))
                mjw.step(self.m, d)
                states[:, k, self.qpos] = d.qpos.numpy()
                states[:, k, self.qvel] = d.qvel.numpy()
                states[:, k, 0] = d.time.numpy()
                sensors[:, k] = d.sensordata.numpy()
        return states, sensors

    def close(self) -> None:
        pass

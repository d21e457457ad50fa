"""Many worlds of one MuJoCo model stepped in C: ``mujoco.rollout`` over a persistent pool.

    batch = Batch(models, nthread=2)              # one MjModel per world (domain randomization)
    state = batch.initial_state(qpos, qvel)       # [N, nstate] full physics state
    states, sensors = batch.step(state, control)  # control [N, nsub, nu] -> [N, nsub, *]

Python runs once per policy step for the whole batch; the ``nsub`` physics substeps of every
world run inside the rollout thread pool. A world's result does not depend on the thread count
or on the other worlds, so a batch is deterministic.
"""

from __future__ import annotations

import os

import mujoco
import numpy as np
from mujoco import rollout

STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS


def full_states(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
    """``mjSTATE_FULLPHYSICS`` vectors [N, nstate] of a reset ``model`` with ``qpos`` [N, nq] and
    ``qvel`` [N, nv] (that state starts with time, then qpos, then qvel)."""
    d = mujoco.MjData(model)
    base = np.empty(mujoco.mj_stateSize(model, STATE_SPEC))
    mujoco.mj_getState(model, d, base, STATE_SPEC)
    out = np.repeat(base[None], len(qpos), axis=0)
    out[:, 1:1 + model.nq] = qpos
    out[:, 1 + model.nq:1 + model.nq + model.nv] = qvel
    return out


class Batch:
    def __init__(self, models: list[mujoco.MjModel], nthread: int = 0):
        if not models:
            raise ValueError("Batch: needs at least one model")
        self.models = models
        self.model = models[0]
        m = self.model
        self.nthread = nthread or os.cpu_count() or 1
        self.datas = [mujoco.MjData(m) for _ in range(self.nthread)]
        self.nstate = mujoco.mj_stateSize(m, STATE_SPEC)
        # FULLPHYSICS starts with time, then qpos and qvel.
        self.qpos = slice(1, 1 + m.nq)
        self.qvel = slice(1 + m.nq, 1 + m.nq + m.nv)
        self._pool = rollout.Rollout(nthread=self.nthread) if self.nthread > 1 else None

    def __len__(self) -> int:
        return len(self.models)

    def initial_state(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """Full physics states [N, nstate] with ``qpos`` [N, nq] and ``qvel`` [N, nv], time 0."""
        return full_states(self.model, qpos, qvel)

    def step(self, state: np.ndarray, control: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Roll every world ``control.shape[1]`` substeps from ``state``.

        ``control``: [N, nsub, nu] actuator targets per substep. Returns the states
        [N, nsub, nstate] and sensor values [N, nsub, nsensordata] after each substep.
        """
        n, nsub = control.shape[:2]
        if n != len(self.models) or state.shape != (n, self.nstate):
            raise ValueError(f"Batch.step: {len(self.models)} worlds, got state {state.shape} "
                             f"and control {control.shape}")
        models = self.models if len(self.models) > 1 else self.model
        if self._pool is not None:
            return self._pool.rollout(models, self.datas, state, control, nstep=nsub)
        return rollout.rollout(models, self.datas[0], state, control, nstep=nsub)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

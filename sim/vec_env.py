"""N sim robots in worker processes behind one batched ``step``: the vectorized env of RL on the
PyBullet tasks (issue 16), running the same robot and task code as robot_node (``make_sim``).

    with VecSimEnv("panda", "pick_place", n_envs=8) as env:
        obs = env.reset(seed=1000)               # {key: [N, ...]}; env i starts with seed 1000 + i
        obs, reward, done, info = env.step(actions)  # actions [N, D] joint setpoints

Each worker steps its robot one control period per ``step``; all workers step at once. When an
episode ends (the task's ``done``) the worker records its outcome and starts the next episode at
once (auto-reset) with the next unused seed, so ``obs`` is always the start of a live episode and
``info`` says which episodes ended (``success``, ``seed``, ``ticks``) and each env's task
``error`` after the step (an ended episode's final one) and ``error_before`` it. Seeds are handed out in
order (``seed``, ``seed + 1``, ...): env i's first episode is ``seed + i``, later ones go to the
envs in the order they finish (lowest index first on a tie), so a run is the same every time and
every episode is the one its seed gives in ``make_sim`` directly.

Messages between the processes are a JSON header and raw array bytes (no pickle).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
from typing import Any

import numpy as np

from rosmind.errors import SpecError, UserError


def pack(header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> bytes:
    arrays = {k: np.ascontiguousarray(v) for k, v in (arrays or {}).items()}
    meta = json.dumps({"h": header, "a": [[k, str(a.dtype), list(a.shape)] for k, a in arrays.items()]}).encode()
    return len(meta).to_bytes(4, "little") + meta + b"".join(a.tobytes() for a in arrays.values())


def unpack(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    n = int.from_bytes(data[:4], "little")
    meta = json.loads(data[4:4 + n])
    arrays, at = {}, 4 + n
    for key, dtype, shape in meta["a"]:
        dt = np.dtype(dtype)
        size = dt.itemsize * int(np.prod(shape))
        arrays[key] = np.frombuffer(data[at:at + size], dtype=dt).reshape(shape).copy()
        at += size
    return meta["h"], arrays


def _error(sim) -> float:
    """The task's ``error`` (its distance from success) now; NaN for a task that has none."""
    return float(sim.task_status().get("error", math.nan))


def _worker(conn, robot: str, task: str, options: dict) -> None:
    from rosmind.sim.robots import make_sim

    try:
        sim = make_sim(robot, task, **options)
        sim.connect()
    except Exception as e:  # noqa: BLE001 - told to the parent, which raises it
        conn.send_bytes(pack({"error": f"{type(e).__name__}: {e}"}))
        return
    conn.send_bytes(pack({"ok": True, "dof": int(sim.spec.dof)}))
    ticks = 0
    try:
        while True:
            header, arrays = unpack(conn.recv_bytes())
            cmd = header["cmd"]
            if cmd == "close":
                break
            if cmd == "reset":
                ticks = 0
                obs = sim.reset(int(header["seed"]))
                conn.send_bytes(pack({"seed": header["seed"], "error": _error(sim)}, obs))
                continue
            sim.write(arrays["action"])
            sim.step()
            ticks += 1
            st = sim.task_status()
            out = {"done": bool(st["done"]), "success": bool(st.get("success", False)), "ticks": ticks,
                   "error": float(st.get("error", math.nan))}
            if st["done"]:
                out["needs_seed"] = True
                conn.send_bytes(pack(out))
                header, _ = unpack(conn.recv_bytes())
                ticks = 0
                obs = sim.reset(int(header["seed"]))
                conn.send_bytes(pack({"seed": header["seed"], "error": _error(sim)}, obs))
            else:
                conn.send_bytes(pack(out, sim.read()))
    finally:
        sim.disconnect()


class VecSimEnv:
    def __init__(self, robot: str, task: str, n_envs: int, options: dict | None = None):
        if n_envs < 1:
            raise SpecError(f"VecSimEnv: n_envs must be >= 1, got {n_envs}")
        ctx = mp.get_context("spawn")  # a fresh interpreter: no PyBullet or torch state inherited
        self.n_envs = n_envs
        self._conns, self._procs = [], []
        for _ in range(n_envs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, robot, task, dict(options or {})), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        hellos = [self._recv(i) for i in range(n_envs)]
        bad = [h["error"] for h, _ in hellos if "error" in h]
        if bad:
            self.close()
            raise UserError(f"VecSimEnv({robot!r}, {task!r}): {bad[0]}")
        self.dof = hellos[0][0]["dof"]
        self.seeds = [-1] * n_envs  # the seed of each env's live episode
        self.errors = np.full(n_envs, math.nan)  # each env's task error now (``Task.status``)
        self._next_seed = 0
        self._closed = False

    def _recv(self, i: int) -> tuple[dict, dict]:
        try:
            return unpack(self._conns[i].recv_bytes())
        except EOFError:
            raise UserError(f"VecSimEnv: worker {i} (pid {self._procs[i].pid}) died "
                            f"(exit code {self._procs[i].exitcode})") from None

    @staticmethod
    def _stack(obs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {k: np.stack([o[k] for o in obs]) for k in obs[0]}

    def reset(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Every env starts a new episode: env i with ``seed + i``; later seeds follow on."""
        for i, c in enumerate(self._conns):
            c.send_bytes(pack({"cmd": "reset", "seed": seed + i}))
        self._next_seed = seed + self.n_envs
        obs = []
        for i in range(self.n_envs):
            h, o = self._recv(i)
            self.seeds[i] = h["seed"]
            self.errors[i] = h["error"]
            obs.append(o)
        return self._stack(obs)

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict]:
        """``actions [N, dof]`` -> ``(obs, reward [N], done [N], info)``; reward 1 on success."""
        a = np.asarray(actions, dtype=np.float64)
        if a.shape != (self.n_envs, self.dof):
            raise SpecError(f"VecSimEnv.step: actions of shape {list(a.shape)}, expected [{self.n_envs}, {self.dof}]")
        if not np.all(np.isfinite(a)):
            raise SpecError(f"VecSimEnv.step: non-finite action for env(s) "
                            f"{sorted(set(np.argwhere(~np.isfinite(a))[:, 0].tolist()))}")
        for i, c in enumerate(self._conns):
            c.send_bytes(pack({"cmd": "step"}, {"action": a[i]}))
        heads = [self._recv(i) for i in range(self.n_envs)]
        done = np.array([h["done"] for h, _ in heads])
        success = np.array([h["success"] for h, _ in heads])
        error = np.array([h["error"] for h, _ in heads])
        info = {"success": success, "seed": np.array(self.seeds), "ticks": np.array([h["ticks"] for h, _ in heads]),
                "error": error, "error_before": self.errors.copy()}  # after the step (the final state if done), before
        self.errors = error.copy()
        obs: list[dict[str, np.ndarray] | None] = [o if not h["done"] else None for h, o in heads]
        for i in np.flatnonzero(done):  # auto-reset with the next seeds, in env order
            self._conns[i].send_bytes(pack({"cmd": "seed", "seed": self._next_seed}))
            self._next_seed += 1
        for i in np.flatnonzero(done):
            h, o = self._recv(i)
            self.seeds[i] = h["seed"]
            self.errors[i] = h["error"]
            obs[i] = o
        return self._stack(obs), success.astype(np.float64) * done, done, info

    def close(self) -> None:
        if getattr(self, "_closed", False):
            return
        self._closed = True
        for c, p in zip(self._conns, self._procs, strict=True):
            try:
                if p.is_alive():
                    c.send_bytes(pack({"cmd": "close"}))
            except (BrokenPipeError, OSError):
                pass
        for c, p in zip(self._conns, self._procs, strict=True):
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
            c.close()

    def __enter__(self) -> VecSimEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

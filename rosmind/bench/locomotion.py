"""Quadruped locomotion: physics and end-to-end PPO speed, MuJoCo vs PyBullet, and the walking
checkpoint's velocity tracking and falls (MuJoCo, and sim-to-sim on PyBullet), in one run.

    rosmind bench locomotion --checkpoint checkpoints/a1_walk --json benchmarks/results/locomotion.json

- ``physics``: one A1 world standing in place, physics steps/s on one core: MuJoCo
  (``mj_step``) and PyBullet (``stepSimulation``), same URDF, same 5 ms time step.
- ``batch``: ``--envs`` MuJoCo worlds stepped by ``mujoco.rollout``, 1 and 2 threads.
- ``end_to_end``: PPO (rsl-rl) policy steps/s over whole iterations (env step + observations +
  rewards + policy + the PPO update, amortized), 1 and 2 cores.
- ``tracking``: ``--episodes`` episodes of 20 s per terrain with random commands (re-drawn
  every 5 s from the checkpoint's trained ranges) and pushes (every 8 s, up to 0.5 m/s):
  mean |v_xy - cmd_xy| (m/s), mean |yaw rate - cmd|, falls with a Wilson 95 % interval.
- ``sim_to_sim``: the same on the PyBullet A1 (flat), direct mode.
- ``sim_to_sim_ros``: the PyBullet A1 through the ROS graph (launch/sim_a1_walk.launch.yaml,
  ``backend:=pybullet``, lockstep): robot_node, policy_node, safety_node, with a constant
  ``cmd_vel`` from ``rosmind_ros.constant_cmd_vel`` per command, ``--ros-episodes`` each.
- ``training``: the checkpoint's own record (iterations, env steps, wall time).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def add_arguments(p):
    p.add_argument("--checkpoint", default="checkpoints/a1_walk")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--terrains", default="flat,rough", help="MuJoCo terrains for the tracking figures")
    p.add_argument("--sim-to-sim-episodes", type=int, default=20)
    p.add_argument("--ros-episodes", type=int, default=5, help="per command, through the ROS graph")
    p.add_argument("--envs", type=int, default=1024, help="worlds for the batch and end-to-end figures")
    p.add_argument("--iterations", type=int, default=4, help="timed PPO iterations per core count")
    p.add_argument("--skip", default="", help="comma-separated sections to skip")
    p.add_argument("--min-height", type=float, default=None,
                   help="the walk task's fall line (trunk height, m; default the task's 0.15)")
    p.add_argument("--json", type=Path, default=None)


def _physics(seconds: float = 3.0) -> dict:
    import mujoco
    import pybullet as p

    from rosmind.sim.robots import make_sim

    out = {}
    sim = make_sim("a1", "walk", backend="mujoco")
    sim.reset(0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        mujoco.mj_step(sim.model, sim.data, nstep=100)
        n += 100
    out["mujoco"] = {"physics_steps_per_s": n / (time.perf_counter() - t0), "timestep_s": sim.model.opt.timestep}
    bullet = make_sim("a1", "walk")
    bullet.connect()
    bullet.reset(0)
    cid = bullet.world.cid
    # The same 5 ms step as MuJoCo (rosmind's PyBullet world otherwise divides 20 ms into its own).
    p.setPhysicsEngineParameter(fixedTimeStep=sim.model.opt.timestep, physicsClientId=cid)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            p.stepSimulation(physicsClientId=cid)
        n += 100
    dt = p.getPhysicsEngineParameters(physicsClientId=cid)["fixedTimeStep"]
    out["pybullet"] = {"physics_steps_per_s": n / (time.perf_counter() - t0), "timestep_s": dt}
    bullet.disconnect()
    out["mujoco_over_pybullet"] = out["mujoco"]["physics_steps_per_s"] / out["pybullet"]["physics_steps_per_s"]
    return out


def _batch(envs: int) -> dict:
    import numpy as np

    from rosmind.sim.locomotion import LOCOMOTION_TASKS, LocomotionEnv

    out = {}
    for threads in (1, 2):
        env = LocomotionEnv(LOCOMOTION_TASKS.get("a1_velocity").factory(num_envs=envs, threads=threads))
        env.reset()
        control = np.repeat(env.target[:, None, :], env.cfg.decimation, axis=1)
        env.batch.step(env.state, control)
        reps, t0 = 5, time.perf_counter()
        for _ in range(reps):
            env.batch.step(env.state, control)
        wall = time.perf_counter() - t0
        out[f"threads_{threads}"] = {"physics_steps_per_s": reps * envs * env.cfg.decimation / wall,
                                     "policy_steps_per_s_physics_only": reps * envs / wall}
        env.close()
    return out


def _end_to_end(envs: int, iterations: int) -> dict:
    import tempfile

    import torch

    from rosmind.policies.rl import RLConfig, _runner_class, _vec_env_class, build_env

    out = {}
    for cores in (1, 2):
        torch.set_num_threads(cores)
        env = build_env("a1_velocity", {"num_envs": envs, "threads": cores})
        rcfg = RLConfig(iterations=iterations + 1, save_every=10_000, progress=False)
        with tempfile.TemporaryDirectory() as tmp:
            runner = _runner_class()(_vec_env_class()(env), rcfg.runner_cfg(), log_dir=None, device="cpu")
            runner.ckpt_root = Path(tmp)
            runner.learn(1)  # warm-up
            t0 = time.perf_counter()
            runner.learn(iterations)
            wall = time.perf_counter() - t0
        steps = iterations * rcfg.num_steps_per_env * envs
        out[f"cores_{cores}"] = {"policy_steps_per_s": steps / wall, "iterations": iterations, "envs": envs}
        env.close()
    return out


def _tracking(checkpoint: str, backend: str, terrain: str, episodes: int, min_height: float | None = None) -> dict:
    from rosmind.checkpoint import load_checkpoint
    from rosmind.sim.evaluate import evaluate
    from rosmind.sim.robots import make_sim
    from rosmind.stats import wilson_interval

    policy = load_checkpoint(checkpoint)
    cfg = policy.config
    ranges = [list(r) for r in cfg.command_ranges]
    options = dict(command_resample_s=5.0, command_ranges=ranges, push_interval_s=8.0, push_velocity=0.5)
    if min_height is not None:
        options["min_height"] = min_height
    kw = {"backend": backend, **({"terrain": terrain} if backend == "mujoco" else {})}
    seeds = list(range(50_000, 50_000 + episodes))

    def make():
        return make_sim(cfg.robot, "walk", **kw, **options)

    t0 = time.perf_counter()
    res = evaluate(make, policy, seeds)
    d = res.to_dict()
    falls = len(seeds) - d["successes"]
    errs = d["final_error_m"]
    return {"backend": backend, "terrain": terrain, "episodes": len(seeds), "falls": falls,
            "fall_rate": falls / len(seeds), "fall_rate_ci95": list(wilson_interval(falls, len(seeds))),
            "tracking_error_mps_mean": sum(errs) / len(errs), "tracking_error_mps_max": max(errs),
            "task_options": options, "wall_s": time.perf_counter() - t0}


ROS_COMMANDS = ((0.5, 0.0, 0.0), (1.0, 0.0, 0.0), (0.3, 0.3, 0.5))


def _sim_to_sim_ros(checkpoint: str, episodes: int, commands=ROS_COMMANDS) -> dict:
    """Per constant command: the PyBullet A1 walking in the ROS graph (lockstep) for ``episodes``
    episodes of 20 s with pushes; the walk task's tracking error and falls from robot_node's results."""
    import subprocess
    import sys
    import tempfile

    from rosmind.errors import UserError
    from rosmind.stats import wilson_interval

    root = Path(__file__).resolve().parents[2]
    per, errs, falls, n = [], [], 0, 0
    for i, cmd in enumerate(commands):
        with tempfile.TemporaryDirectory(prefix="rosmind-s2s-") as tmp:
            results = Path(tmp) / "results.json"
            # Fresh well before policy_node's 0.5 s command timeout even when lockstep runs
            # several times faster than real time.
            source = subprocess.Popen([sys.executable, "-m", "rosmind_ros.constant_cmd_vel", *map(str, cmd),
                                       "--rate", "200"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                options = f"command=[{cmd[0]},{cmd[1]},{cmd[2]}],push_interval_s=8.0,push_velocity=0.5"
                rc = subprocess.call([sys.executable, "-m", "rosmind.cli", "launch",
                                      str(root / "launch" / "sim_a1_walk.launch.yaml"), "backend:=pybullet",
                                      f"checkpoint:={Path(checkpoint).resolve()}", f"episodes:={episodes}",
                                      f"seed:={60_000 + 100 * i}", f"task_options:={options}",
                                      f"results:={results}"], stdout=subprocess.DEVNULL)
            finally:
                source.terminate()
                source.wait(timeout=10)
            if rc != 0 or not results.exists():
                raise UserError(f"sim_to_sim_ros: the ROS graph exited with code {rc} (command {cmd})")
            eps = json.loads(results.read_text())["episodes"]
        e = [float(x["final_error"]) for x in eps]
        f = sum(not x["success"] for x in eps)
        per.append({"command": list(cmd), "episodes": len(eps), "falls": f, "tracking_error_mps_mean": sum(e) / len(e)})
        errs += e
        falls += f
        n += len(eps)
    return {"backend": "pybullet", "graph": "launch/sim_a1_walk.launch.yaml (lockstep)", "episodes": n,
            "falls": falls, "fall_rate_ci95": list(wilson_interval(falls, n)),
            "tracking_error_mps_mean": sum(errs) / len(errs), "per_command": per}


def run(args) -> int:
    skip = {s for s in args.skip.split(",") if s}
    out: dict = {"benchmark": "locomotion", "cpu_count": os.cpu_count(), "checkpoint": args.checkpoint}
    if "physics" not in skip:
        out["physics"] = _physics()
        print("physics", json.dumps(out["physics"]))
    if "batch" not in skip:
        out["batch"] = _batch(args.envs)
        print("batch", json.dumps(out["batch"]))
    if "end_to_end" not in skip:
        out["end_to_end"] = _end_to_end(args.envs, args.iterations)
        print("end_to_end", json.dumps(out["end_to_end"]))
    if "tracking" not in skip:
        out["tracking"] = {t: _tracking(args.checkpoint, "mujoco", t, args.episodes, args.min_height)
                           for t in args.terrains.split(",") if t}
        print("tracking", json.dumps(out["tracking"]))
    if "sim_to_sim" not in skip:
        out["sim_to_sim"] = _tracking(args.checkpoint, "pybullet", "flat", args.sim_to_sim_episodes, args.min_height)
        print("sim_to_sim", json.dumps(out["sim_to_sim"]))
    if "sim_to_sim_ros" not in skip and args.ros_episodes > 0:
        out["sim_to_sim_ros"] = _sim_to_sim_ros(args.checkpoint, args.ros_episodes)
        print("sim_to_sim_ros", json.dumps(out["sim_to_sim_ros"]))
    if "training" not in skip:
        from rosmind.checkpoint import read_manifest

        out["training"] = read_manifest(args.checkpoint).get("training", {})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return 0

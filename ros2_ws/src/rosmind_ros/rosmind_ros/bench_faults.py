"""Fault trials on the real sim graph (issue 18): robot_node (PyBullet, realtime) + policy_node
(the scripted expert) + safety_node, with ``fault_proxy`` on the policy's output
(``safety/joint_trajectory``) or a node killed, and a monitor on what reaches the robot.

Each trial asserts nothing itself; it measures, per fault kind:

- ``unsafe``: messages reaching the robot (``joint_trajectory``, ``forward_position_controller/
  commands``) with a non-finite value, a position outside the joint limits, or a step between
  points faster than the joint's velocity limit (target 0);
- ``safe_answer_ms``: for a corrupted chunk, the wall time from the proxy sending it to
  safety's answer reaching the robot (an empty "hold" trajectory when refused, the clamped
  chunk otherwise), the answer found by the chunk's stamp; ``hold`` / ``clamped`` count them;
- ``hold_after_plan_end_periods`` (policy killed): control periods from the end of the last
  accepted plan to safety's watchdog hold; ``stopped_after_plan_end_periods`` (safety killed):
  from the end of the last plan the robot received to its joints standing still (< 0.05 rad/s);
- ``holds_in_window`` / ``chunks_in_window`` (the sim clock of policy_node and safety_node
  jumped or stalled): what reached the robot meanwhile;
- ``recovered``: an accepted chunk reached the robot after the fault ended (restart included);
- the task's successes (mild faults: success rate vs nominal).

The ROS side of ``rosmind bench faults`` (which picks a free ROS_DOMAIN_ID and runs this as
``python -m rosmind_ros.bench_faults run ...``); tests/test_faults_ros.py runs a few trials.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rosmind.ros_env import ros_environ
from rosmind.spec import load_spec
from rosmind.stats import wilson_interval

ACTION_TOPIC = "safety/joint_trajectory"
STILL_RAD_S = 0.05


@dataclass
class Trial:
    name: str
    fault: dict = field(default_factory=dict)  # FaultConfig fields for fault_proxy ({} = no proxy)
    mild: bool = False  # on for the whole run (task success measured); else a window mid-episode
    kill: str = ""  # "policy_node" / "safety_node": SIGKILLed at the onset
    restart: bool = False
    window_s: float = 1.0
    sensor: str = ""  # an input topic to proxy on its way to ``consumers`` ("" = the policy's output)
    msg_type: str = "trajectory_msgs/msg/JointTrajectory"
    consumers: tuple[str, ...] = ("policy_node",)


TRIALS = {t.name: t for t in (
    Trial("nominal", mild=True),
    Trial("drop_10", {"kind": "drop", "rate": 0.1}, mild=True),
    Trial("drop_20", {"kind": "drop", "rate": 0.2}, mild=True),
    Trial("delay_100ms", {"kind": "delay", "delay_s": 0.1}, mild=True),
    Trial("delay_0_500ms", {"kind": "delay", "jitter_s": 0.5}, mild=True),
    Trial("reorder_10", {"kind": "reorder", "rate": 0.1}, mild=True),
    Trial("duplicate_10", {"kind": "duplicate", "rate": 0.1}, mild=True),
    # A slow policy: every chunk arrives 5 control periods after its observation.
    Trial("slow_policy_5x", {"kind": "delay", "delay_s": 0.25}, mild=True),
    Trial("nan", {"kind": "nan"}),
    Trial("inf", {"kind": "inf"}),
    Trial("out_of_limits", {"kind": "out_of_limits"}),
    Trial("jump", {"kind": "jump"}),
    # Stale inputs: the policy must pause (safety's watchdog holds) and name the topic, then resume.
    Trial("object_poses_frozen", {"kind": "freeze"}, sensor="object_poses", msg_type="geometry_msgs/msg/PoseArray"),
    Trial("joint_states_lost", {"kind": "drop"}, sensor="joint_states", msg_type="sensor_msgs/msg/JointState"),
    # The sim clock as policy_node and safety_node see it: 1 s ahead, 1 s behind, or stopped.
    *(Trial(name, fault, sensor="/clock", msg_type="rosgraph_msgs/msg/Clock", consumers=("policy_node", "safety_node"))
      for name, fault in (("clock_jump_forward_1s", {"kind": "stamp_offset", "offset_s": 1.0}),
                          ("clock_jump_back_1s", {"kind": "stamp_offset", "offset_s": -1.0}),
                          ("clock_stall", {"kind": "freeze"}))),
    Trial("policy_killed_restarted", kill="policy_node", restart=True),
    Trial("safety_killed", kill="safety_node"),
)}
QUICK = ("nan", "out_of_limits", "drop_20", "object_poses_frozen", "policy_killed_restarted", "safety_killed")


class _Proc:
    def __init__(self, name: str, argv: list[str], env: dict, log_dir: Path):
        self.name = name
        self.log = open(log_dir / f"{name}.log", "a")
        self.popen = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                                      stderr=subprocess.STDOUT, text=True)

    def tail(self, n: int = 5) -> str:
        self.log.flush()
        return " | ".join(Path(self.log.name).read_text(errors="replace").strip().splitlines()[-n:])

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def _node(module: str, params: dict, remaps: dict | None = None) -> list[str]:
    argv = [sys.executable, "-m", f"rosmind_ros.{module}", "--ros-args"]
    for k, v in params.items():  # strings quoted: 'nan' would be read as a float
        argv += ["-p", f"{k}:={str(v).lower() if isinstance(v, bool) else repr(v) if isinstance(v, str) else v}"]
    for a, b in (remaps or {}).items():
        argv += ["-r", f"{a}:={b}"]
    return argv


class Monitor:
    """What reaches the robot, the robot's joints and the proxy's events, with wall times."""

    def __init__(self, node, spec):
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray, String
        from trajectory_msgs.msg import JointTrajectory

        self.spec, self.dt = spec, spec.control_period
        self.lower, self.upper = np.array(spec.limits("lower")), np.array(spec.limits("upper"))
        self.vmax = np.array(spec.limits("velocity"))
        self.lock = threading.Lock()
        self.commands: list[tuple[float, float, int, bool, int]] = []  # (wall, stamp s, points, safe, stamp ns)
        self.unsafe: list[str] = []
        self.states: list[tuple[float, float, np.ndarray]] = []  # (wall, stamp, q)
        self.events: list[dict] = []
        node.create_subscription(JointTrajectory, "joint_trajectory", self._on_traj, 100)
        node.create_subscription(Float64MultiArray, "forward_position_controller/commands", self._on_cmd, 100)
        node.create_subscription(JointState, "joint_states", self._on_js, 100)
        node.create_subscription(String, "fault_proxy/events", self._on_event, 100)
        self.stale_named: list[tuple[float, str]] = []  # (wall, policy_node's stale_topics)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 100)

    def _on_diag(self, m) -> None:
        for st in m.status:
            if st.name.startswith("policy_node"):
                stale = next((kv.value for kv in st.values if kv.key == "stale_topics"), "")
                if stale:
                    with self.lock:
                        self.stale_named.append((time.time(), stale))

    def _check(self, names: list[str], pts: np.ndarray) -> str:
        idx = [self.spec.joint_names.index(n) for n in names if n in self.spec.joint_names]
        if len(idx) != len(names):
            return f"unknown joints {names}"
        if not np.all(np.isfinite(pts)):
            return "non-finite position"
        lo, hi = self.lower[idx], self.upper[idx]
        if np.any(pts < lo - 1e-6) or np.any(pts > hi + 1e-6):
            return "position outside the joint limits"
        if len(pts) > 1 and np.any(np.abs(np.diff(pts, axis=0)) > self.vmax[idx] * self.dt * 1.001 + 1e-9):
            return "step faster than the velocity limit"
        return ""

    def _on_traj(self, m) -> None:
        rows = [list(p.positions) for p in m.points]
        if any(len(r) != len(m.joint_names) for r in rows):
            pts, bad = np.zeros((len(rows), 0)), "points whose length is not the number of joints"
        else:
            pts = np.array(rows, dtype=np.float64).reshape(len(rows), len(m.joint_names))
            bad = self._check(list(m.joint_names), pts) if len(pts) else ""
        with self.lock:
            st = m.header.stamp
            self.commands.append((time.time(), st.sec + st.nanosec * 1e-9, len(pts), not bad,
                                  st.sec * 1_000_000_000 + st.nanosec))
            if bad:
                self.unsafe.append(f"joint_trajectory: {bad}")

    def _on_cmd(self, m) -> None:
        q = np.array(m.data, dtype=np.float64)
        bad = self._check(list(self.spec.joint_names[:len(q)]), q[None])
        with self.lock:
            self.commands.append((time.time(), 0.0, 1, not bad, 0))
            if bad:
                self.unsafe.append(f"forward_position_controller/commands: {bad}")

    def _on_js(self, m) -> None:
        pos = dict(zip(m.name, m.position, strict=False))
        q = np.array([pos.get(n, np.nan) for n in self.spec.joint_names])
        with self.lock:
            self.states.append((time.time(), m.header.stamp.sec + m.header.stamp.nanosec * 1e-9, q))

    def _on_event(self, m) -> None:
        with self.lock:
            self.events.append(json.loads(m.data))

    def first_chunk_after(self, t: float) -> tuple[float, float, int, bool, int] | None:
        with self.lock:
            return next((c for c in self.commands if c[0] > t and c[2] > 1), None)


def _plan_end_before(commands, t_wall: float, dt: float) -> float | None:
    """Sim time at which the last multi-point chunk received before ``t_wall`` runs out."""
    chunks = [c for c in commands if c[0] <= t_wall and c[2] > 1]
    return None if not chunks else chunks[-1][1] + (chunks[-1][2] - 1) * dt


def run_trial(trial: Trial, episodes: int, seed: int, env: dict, log_dir: Path, node, spec,
              timeout_s: float) -> dict:
    from std_srvs.srv import SetBool

    mon = Monitor(node, spec)
    results = log_dir / f"{trial.name}_results.json"
    policy_params = {"policy": "expert", "robot": spec.name, "mode": "realtime", "use_sim_time": True,
                     "startup_timeout_s": 60.0}
    # As in launch/sim_pick_place.launch.yaml: the policy's output goes to safety (here through the proxy).
    remap = {"joint_trajectory": f"fault/{ACTION_TOPIC}" if trial.fault and not trial.sensor else ACTION_TOPIC}
    safety_remap: dict[str, str] = {}
    if trial.sensor:
        proxy_in, proxy_out = trial.sensor, "/fault/" + trial.sensor.lstrip("/")
        for consumer in trial.consumers:
            (remap if consumer == "policy_node" else safety_remap)[trial.sensor] = proxy_out
    else:
        proxy_in, proxy_out = f"fault/{ACTION_TOPIC}", ACTION_TOPIC
    procs: dict[str, _Proc] = {}
    start = lambda name, module, params, remaps=None: procs.__setitem__(  # noqa: E731
        name, _Proc(f"{trial.name}.{name}", _node(module, params, remaps), env, log_dir))
    client = None
    try:
        if trial.fault:
            start("fault_proxy", "fault_proxy", {"topic_in": proxy_in, "topic_out": proxy_out, "msg_type": trial.msg_type,
                                                 "robot": spec.name, "active": trial.mild, "seed": seed, **trial.fault})
            client = node.create_client(SetBool, "fault_proxy/enable")
            # Found before the episode starts, not at the onset: a proxy still undiscovered on a
            # loaded machine is a named error here, not a trial that silently injects nothing.
            if not trial.mild and not client.wait_for_service(timeout_sec=60.0):
                raise RuntimeError(f"trial {trial.name}: fault_proxy's enable service did not appear in 60 s: "
                                   f"{procs['fault_proxy'].tail()}")
        start("safety_node", "safety_node", {"robot": spec.name, "use_sim_time": True}, safety_remap)
        start("policy_node", "policy_node", policy_params, remap)
        start("robot_node", "robot_node", {"robot": spec.name, "task": "pick_place", "mode": "realtime",
                                           "episodes": episodes, "seed": seed, "results": str(results),
                                           "min_subscribers": 3, "policy_wait_s": 60.0})
        deadline = time.monotonic() + timeout_s
        onset = end = asked = None
        while time.monotonic() < deadline and procs["robot_node"].popen.poll() is None:
            time.sleep(0.02)
            dead = [n for n, p in procs.items() if p.popen.poll() is not None and n not in (trial.kill, "robot_node")]
            if dead:
                raise RuntimeError(f"trial {trial.name}: {dead[0]} exited with code "
                                   f"{procs[dead[0]].popen.returncode}: {procs[dead[0]].tail()}")
            if trial.mild or onset is not None and end is not None:
                continue
            first = mon.first_chunk_after(0.0)
            if first is None:
                continue
            if onset is None and time.time() > first[0] + 1.5:  # 1.5 s into the task
                if trial.kill:
                    onset = time.time()
                    procs[trial.kill].kill()
                elif asked is None:
                    asked = (time.time(), client.call_async(SetBool.Request(data=True)))
                elif asked[1].done():  # the proxy has switched the fault on: the window runs from
                    onset = asked[0]  # the request (the earliest the fault can begin)
                elif time.time() > asked[0] + 10.0:
                    raise RuntimeError(f"trial {trial.name}: fault_proxy did not answer ~/enable in 10 s: "
                                       f"{procs['fault_proxy'].tail()}")
            elif onset is not None and end is None and time.time() > onset + trial.window_s:
                end = time.time()
                if trial.kill and trial.restart:
                    procs[trial.kill].log.close()
                    start(trial.kill, trial.kill, policy_params if trial.kill == "policy_node"
                          else {"robot": spec.name, "use_sim_time": True},
                          remap if trial.kill == "policy_node" else safety_remap)
                elif not trial.kill:
                    client.call_async(SetBool.Request(data=False))
        finished = procs["robot_node"].popen.poll() == 0
    finally:
        for p in reversed(list(procs.values())):
            p.stop()
        if client is not None:
            node.destroy_client(client)
    with mon.lock:
        commands, states, events = list(mon.commands), list(mon.states), list(mon.events)
        stale_named = list(mon.stale_named)
    res = json.loads(results.read_text()) if results.exists() else {"episodes": []}
    eps = res.get("episodes", [])
    k = sum(bool(e["success"]) for e in eps)
    out = {"fault": trial.fault or ({"kill": trial.kill, "restart": trial.restart} if trial.kill else {}),
           "mild": trial.mild, "graph_finished": finished, "episodes": len(eps), "successes": k,
           "success_rate": k / len(eps) if eps else 0.0, "ci95": list(wilson_interval(k, len(eps))),
           "commands_to_robot": len(commands), "unsafe": len(mon.unsafe), "unsafe_kinds": sorted(set(mon.unsafe)),
           "injected": sum(1 for e in events if "injected" in e)}
    dt = spec.control_period
    if trial.sensor == "/clock" and onset is not None:
        during = [c for c in commands if onset < c[0] < onset + trial.window_s + 0.5]
        out["holds_in_window"] = sum(1 for c in during if c[2] <= 1)
        out["chunks_in_window"] = sum(1 for c in during if c[2] > 1)
    elif trial.sensor and onset is not None:
        hold = next((c for c in commands if onset < c[0] < onset + trial.window_s and c[2] == 1), None)
        plan_end = None if hold is None else _plan_end_before(commands, hold[0], dt)
        out["hold_after_plan_end_periods"] = (None if hold is None or plan_end is None
                                              else round((hold[1] - plan_end) / dt, 2))
        named = sorted({v for w, v in stale_named if onset <= w <= onset + trial.window_s + 1.0})
        out["stale_topics_named"] = named
    elif trial.fault and not trial.mild:
        # Each corrupted chunk's answer is found by its stamp (safety answers a refused chunk
        # with an empty hold of the same stamp, and a clamped one keeps it), not by arrival order;
        # safety's own one-point tick setpoints may share a stamp with a chunk and are skipped, and
        # so is an earlier clean chunk of the same tick (a re-sent plan) answered before the fault.
        answers, kinds = [], {"hold": 0, "clamped": 0}
        for e in (e for e in events if "injected" in e):
            ans = next((c for c in commands if c[0] >= e["t"] and c[4] > 0 and c[4] == e.get("stamp_ns")
                        and c[2] != 1), None)
            if ans is not None:
                answers.append((ans[0] - e["t"]) * 1e3)
                kinds["hold" if ans[2] == 0 else "clamped"] += 1
        out["safe_answer_ms"] = {"n": len(answers), "max": max(answers) if answers else None,
                                 "p50": float(np.median(answers)) if answers else None, **kinds}
    if trial.kill and onset is not None:
        out["onset_wall"] = onset
        if trial.kill == "policy_node":  # the last plan: the last chunk before the hold (some were in flight)
            hold = next((c for c in commands if c[0] > onset and c[2] == 1), None)
            plan_end = None if hold is None else _plan_end_before(commands, hold[0], dt)
            out["hold_after_plan_end_periods"] = (None if hold is None or plan_end is None
                                                  else round((hold[1] - plan_end) / dt, 2))
        else:
            plan_end = _plan_end_before(commands, float("inf"), dt)  # the last chunk safety sent
            after = [(s, q) for w, s, q in states if w > onset]
            stopped = None
            for i in range(1, len(after)):
                speed = np.max(np.abs(after[i][1] - after[i - 1][1])) / max(after[i][0] - after[i - 1][0], 1e-9)
                if speed >= STILL_RAD_S:
                    stopped = None
                elif stopped is None:
                    stopped = after[i][0]
            out["stopped_after_plan_end_periods"] = (None if stopped is None or plan_end is None
                                                     else round((stopped - plan_end) / dt, 2))
            out["commands_after_kill"] = sum(1 for c in commands if c[0] > onset + 0.05)
    if not trial.mild:
        recover_after = end if end is not None else None
        out["recovered"] = (None if trial.kill == "safety_node" else
                            recover_after is not None and any(c[0] > recover_after and c[2] > 1 and c[3]
                                                              for c in commands))
    return out


def run_main(a) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    names = list(QUICK) if a.trials == "quick" else (list(TRIALS) if a.trials == "all" else a.trials.split(","))
    unknown = [n for n in names if n not in TRIALS]
    if unknown:
        print(f"unknown trial(s) {unknown}; known: {', '.join(TRIALS)}", file=sys.stderr)
        return 2
    env = ros_environ(a.domain)
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "RMW_IMPLEMENTATION", "ROS_AUTOMATIC_DISCOVERY_RANGE")
                       if k in env})
    spec = load_spec("panda")
    rclpy.init()
    ex = SingleThreadedExecutor()
    stop = threading.Event()

    def spin() -> None:  # spin_once in a loop, so that the thread can be stopped and joined
        while not stop.is_set():
            ex.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    report = {"robot": spec.name, "policy": "expert", "mode": "realtime", "control_period_s": spec.control_period,
              "cpu_count": os.cpu_count(), "seed": a.seed, "trials": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="rosmind-faults-") as tmp:
            log_dir = Path(a.log_dir) if a.log_dir else Path(tmp)
            log_dir.mkdir(parents=True, exist_ok=True)
            for name in names:
                t = TRIALS[name]
                node = rclpy.create_node(f"fault_bench_{name}")  # a fresh monitor per trial
                ex.add_node(node)
                try:
                    r = run_trial(t, a.episodes if t.mild else 1, a.seed, env, log_dir, node, spec, a.timeout)
                finally:
                    ex.remove_node(node)
                    node.destroy_node()
                report["trials"][name] = r
                print(f"{name}: " + json.dumps({k: v for k, v in r.items() if k not in ("fault",)}), flush=True)
    finally:
        # The spin thread ends before rclpy does: a daemon thread still inside the executor at
        # interpreter exit aborted the process ("terminate called without an active exception").
        stop.set()
        spinner.join(timeout=5.0)
        ex.shutdown()
        rclpy.shutdown()
    line = json.dumps(report)
    print("RESULT " + line, flush=True)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rosmind_ros.bench_faults")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--domain", type=int, default=None)
    r.add_argument("--trials", default="all", help="all, quick, or names: " + ",".join(TRIALS))
    r.add_argument("--episodes", type=int, default=5, help="episodes per mild-fault trial")
    r.add_argument("--seed", type=int, default=100000)
    r.add_argument("--timeout", type=float, default=120.0, help="seconds per trial")
    r.add_argument("--log-dir", default="")
    r.add_argument("--json", default="")
    a = p.parse_args(argv)
    return run_main(a)


if __name__ == "__main__":
    sys.exit(main())

"""Transport benchmark: rclpy ping-pong RTT between processes, and policy_node's latency.

Roles (``python -m rosmind_ros.bench_transport ROLE ...``):

- ``echo``: republishes ``bench/ping_<kind>`` on ``bench/pong_<kind>`` (kinds: ``float``, a
  std_msgs/Float64MultiArray of 14 values; ``image``, a 640x480 rgb8 sensor_msgs/Image).
- ``ping --kind K --samples N --rate HZ``: sends one ping per period, waits for its pong, and
  prints ``RESULT {json}`` with the round-trip times (RTT) in ms; one-way = RTT / 2.
- ``policy --samples N``: publishes stamped sensor_msgs/JointState ticks (the robot's joint
  names, at its control rate) to a running policy_node and times each until the
  trajectory_msgs/JointTrajectory with the same header.stamp arrives on ``joint_trajectory``.
- ``run --json PATH``: the whole benchmark, each section in fresh processes in one
  ROS_DOMAIN_ID: floats and images with rosmind's Fast DDS profile, images with Fast DDS'
  default profile (no XML), then policy_node (``policy:=instant mode:=realtime``). Prints a
  table and the ratios and writes the JSON (schema in benchmarks/README.md).

QoS everywhere: reliable, keep-last 10 (rclpy's default, what the nodes use).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rosmind.ros_env import FASTDDS_PROFILE, ros_environ
from rosmind.stats import latency_summary

FLOATS = 14
IMAGE_W, IMAGE_H = 640, 480
TARGETS = {"policy_overhead_ratio_p50_max": 3.0, "policy_p99_ms_max": 5.0}
_NS = 1_000_000_000


def _summary(samples_s: list[float]) -> dict:
    s = latency_summary(samples_s)
    s["max"] = float(np.max(samples_s) * 1e3) if samples_s else float("nan")
    return s


def _message(kind: str):
    """The ping message of ``kind`` and a function that stamps a sequence number into it."""
    if kind == "float":
        from std_msgs.msg import Float64MultiArray

        msg = Float64MultiArray(data=[0.0] * FLOATS)

        def put(m, seq: int):
            m.data[0] = float(seq)
        return msg, put
    from sensor_msgs.msg import Image

    msg = Image(height=IMAGE_H, width=IMAGE_W, encoding="rgb8", step=IMAGE_W * 3)
    msg.data = np.random.default_rng(0).integers(0, 255, IMAGE_W * IMAGE_H * 3, np.uint8).tobytes()

    def put(m, seq: int):
        m.header.stamp.sec = seq
    return msg, put


def _seq(kind: str, msg) -> int:
    return int(msg.data[0]) if kind == "float" else int(msg.header.stamp.sec)


def echo_main() -> int:
    from rclpy.node import Node

    from rosmind_ros.params import run_node

    class EchoNode(Node):
        def __init__(self):
            super().__init__("bench_echo")
            for kind in ("float", "image"):
                msg, _ = _message(kind)
                pub = self.create_publisher(type(msg), f"bench/pong_{kind}", 10)
                self.create_subscription(type(msg), f"bench/ping_{kind}",
                                         lambda m, p=pub: p.publish(m), 10)

    return run_node(EchoNode, [sys.argv[0]])


def _wait(ex, cond, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout_s:g} s")
        ex.spin_once(timeout_sec=0.02)


def ping_main(kind: str, samples: int, rate_hz: float, warmup: int, timeout_s: float) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    rclpy.init(args=[sys.argv[0]])
    node = rclpy.create_node(f"bench_ping_{kind}")
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    msg, put = _message(kind)
    got: dict[int, int] = {}
    pub = node.create_publisher(type(msg), f"bench/ping_{kind}", 10)
    node.create_subscription(type(msg), f"bench/pong_{kind}",
                             lambda m: got.setdefault(_seq(kind, m), time.perf_counter_ns()), 10)
    try:
        _wait(ex, lambda: pub.get_subscription_count() > 0
              and node.count_publishers(f"bench/pong_{kind}") > 0, timeout_s, "no echo node")
        seq, rtts, lost = 0, [], 0
        first_pong = False
        period = 1.0 / rate_hz
        next_t = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        while len(rtts) + lost < samples:
            seq += 1
            put(msg, seq)
            t0 = time.perf_counter_ns()
            pub.publish(msg)
            while seq not in got and time.perf_counter_ns() - t0 < 0.5 * _NS:
                ex.spin_once(timeout_sec=0.005)
            if seq in got and not first_pong:
                first_pong, warm_until = True, seq + warmup
            if not first_pong:  # discovery still settling: retry until the first pong
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no pong within {timeout_s:g} s")
            elif seq > warm_until:
                if seq in got:
                    rtts.append((got[seq] - t0) / _NS)
                else:
                    lost += 1
            next_t += period
            time.sleep(max(0.0, next_t - time.perf_counter()))
            next_t = max(next_t, time.perf_counter() - period)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return {"rate_hz": rate_hz, "samples": len(rtts), "lost": lost,
            "rtt_ms": _summary(rtts), "one_way_ms": _summary([r / 2 for r in rtts])}


def policy_main(robot: str, samples: int, warmup: int, timeout_s: float) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory

    from rosmind.spec import load_spec

    spec = load_spec(robot)
    names = spec.joint_names
    home = [0.5 * (j.lower + j.upper) for j in spec.joints]
    dt = spec.control_period
    rclpy.init(args=[sys.argv[0]])
    node = rclpy.create_node("bench_policy_driver")
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    pub = node.create_publisher(JointState, "joint_states", 10)
    sent: dict[int, int] = {}
    got: dict[int, int] = {}

    def on_cmd(m: JointTrajectory):
        # Keyed to the microsecond: the node may round-trip the stamp through float seconds.
        key = round((m.header.stamp.sec * _NS + m.header.stamp.nanosec) / 1000)
        if key in sent:
            got.setdefault(key, time.perf_counter_ns())

    try:
        _wait(ex, lambda: pub.get_subscription_count() > 0
              and node.count_publishers("joint_trajectory") > 0, timeout_s,
              "policy_node did not come up (no joint_states subscriber / joint_trajectory publisher)")
        info = node.get_publishers_info_by_topic("joint_trajectory")
        reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in info)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        node.create_subscription(JointTrajectory, "joint_trajectory", on_cmd, qos)
        # Stamps are exact multiples of the control period (as the sim's ticks are), sent on time.
        dt_ns = round(dt * _NS)
        t_ros = node.get_clock().now().nanoseconds
        k0 = t_ros // dt_ns + 2
        wall0 = time.perf_counter() + (k0 * dt_ns - t_ros) / _NS
        measured: list[int] = []
        first, k, deadline = None, 0, time.monotonic() + timeout_s
        while len(measured) < samples:
            due = wall0 + k * dt  # spin (not sleep) until the tick, so replies are timed as they come
            while (left := due - time.perf_counter()) > 0:
                ex.spin_once(timeout_sec=min(0.005, left))
            stamp_ns = (k0 + k) * dt_ns
            msg = JointState(name=names, position=home, velocity=[0.0] * len(names),
                             effort=[0.0] * len(names))
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, _NS)
            key = round(stamp_ns / 1000)
            sent[key] = time.perf_counter_ns()
            pub.publish(msg)
            if first is None and got:
                first = k
            if first is None and time.monotonic() > deadline:
                raise TimeoutError(f"policy_node sent no joint_trajectory within {timeout_s:g} s")
            if first is not None and k > first + warmup:
                measured.append(key)
                if len(measured) > 25 and not any(m in got for m in measured[-25:-5]):
                    break  # the node stopped answering its ticks: report what we have
            k += 1
        end = time.monotonic() + 0.5  # the last commands may still be in flight
        while not all(s in got for s in measured) and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.01)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    lat = [(got[s] - sent[s]) / _NS for s in measured if s in got]
    return {"robot": robot, "rate_hz": 1.0 / dt, "samples": len(lat),
            "lost": len(measured) - len(lat), "latency_ms": _summary(lat)}


class _Proc:
    """A role of this module (or a node) in its own process, its output in a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log_dir: Path, name: str):
        self.name, self.log_path = name, log_dir / f"{name}.log"
        self.log = open(self.log_path, "w")
        self.popen = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=self.log, text=True)

    def result(self, timeout_s: float) -> dict:
        try:
            out, _ = self.popen.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError(f"{self.name} did not finish within {timeout_s:g} s"
                               + self.tail()) from None
        line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
        if self.popen.returncode != 0 or line is None:
            raise RuntimeError(f"{self.name} exited with code {self.popen.returncode}" + self.tail())
        return json.loads(line[len("RESULT "):])

    def tail(self, n: int = 8) -> str:
        self.log.flush()
        lines = self.log_path.read_text(errors="replace").strip().splitlines()[-n:]
        return (": " + " | ".join(lines)) if lines else ""

    def stop(self) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()
        return self.popen.returncode


def _shown(path: Path) -> str:
    """``path`` relative to the rosmind checkout when inside it (results get committed)."""
    import rosmind

    try:
        return str(path.relative_to(Path(rosmind.__file__).resolve().parents[1]))
    except ValueError:
        return str(path)


def _me(*args: str) -> list[str]:
    return [sys.executable, "-m", "rosmind_ros.bench_transport", *map(str, args)]


def _ping_section(env, log_dir, tag, kinds, a) -> dict:
    echo = _Proc(_me("echo"), env, log_dir, f"echo_{tag}")
    out = {}
    try:
        for kind in kinds:
            n, rate = (a.float_samples, a.float_rate) if kind == "float" else \
                (a.image_samples, a.image_rate)
            ping = _Proc(_me("ping", "--kind", kind, "--samples", n, "--rate", rate,
                             "--warmup", a.warmup), env, log_dir, f"ping_{kind}_{tag}")
            out[kind] = ping.result(timeout_s=60 + 2 * n / rate)
    finally:
        echo.stop()
    return out


def _policy_run(env, log_dir, a, mode: str) -> dict:
    node = _Proc([sys.executable, "-m", "rosmind_ros.policy_node", "--ros-args",
                  "-p", "policy:=instant", "-p", f"robot:={a.robot}", "-p", f"mode:={mode}"],
                 env, log_dir, f"policy_node_{mode}")
    try:
        drv = _Proc(_me("policy", "--robot", a.robot, "--samples", a.policy_samples,
                        "--warmup", a.warmup, "--timeout", 15), env, log_dir, f"policy_driver_{mode}")
        res = drv.result(timeout_s=90 + 0.2 * a.policy_samples)
    except RuntimeError as e:
        node.stop()
        return {"status": "failed", "mode": mode,
                "reason": f"{e}; policy_node log{node.tail() or ': (empty)'}"}
    node.stop()
    ok = res["samples"] >= 0.9 * a.policy_samples
    return {"status": "ok" if ok else "failed", "mode": mode, **res,
            **({} if ok else {"reason": f"only {res['samples']} of {a.policy_samples} ticks got "
                              "a joint_trajectory stamped with their own stamp"})}


def _policy_section(env, log_dir, a) -> dict:
    """policy_node with the instant policy; realtime mode first (as on a robot). In realtime
    the node answers a tick from a plan that already covers it, so a 1-step instant plan,
    computed after its tick was handled, may never be published for its own stamp: then
    lockstep (the node waits for the plan of each tick) measures the same sensor->command path."""
    from rosmind.launch import module_exists

    if not module_exists("rosmind_ros.policy_node"):
        return {"status": "skipped", "reason": "policy_node unavailable "
                "(no module rosmind_ros.policy_node)"}
    attempts = []
    for mode in a.policy_modes.split(","):
        res = _policy_run(env, log_dir, a, mode)
        if res["status"] == "ok":
            return {**res, "node": "rosmind_ros.policy_node",
                    "params": {"policy": "instant", "robot": a.robot, "mode": mode},
                    "attempts": attempts}
        attempts.append({k: res[k] for k in ("mode", "status", "reason")})
    return {"status": "failed", "reason": "; ".join(f"{t['mode']}: {t['reason']}" for t in attempts),
            "attempts": attempts}


def run_main(a) -> int:
    domain = a.domain if a.domain is not None else int(os.environ.get("ROS_DOMAIN_ID", "0"))
    env = ros_environ(domain)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    env.pop("RMW_FASTRTPS_USE_QOS_FROM_XML", None)
    env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
    plain = {k: v for k, v in env.items() if k != "FASTRTPS_DEFAULT_PROFILES_FILE"}
    log_dir = Path(tempfile.mkdtemp(prefix="rosmind-bench-transport-"))
    t0 = time.time()
    shm = _ping_section(env, log_dir, "profile", ("float", "image"), a)
    default = _ping_section(plain, log_dir, "default", ("image",), a)
    policy = _policy_section(env, log_dir, a) if not a.skip_policy else \
        {"status": "skipped", "reason": "--skip-policy"}
    cases = {
        "float": {"msg": f"std_msgs/Float64MultiArray[{FLOATS}]", "profile": "rosmind", **shm["float"]},
        "image": {"msg": f"sensor_msgs/Image {IMAGE_W}x{IMAGE_H} rgb8", "profile": "rosmind",
                  **shm["image"]},
        "image_default_profile": {"msg": f"sensor_msgs/Image {IMAGE_W}x{IMAGE_H} rgb8",
                                  "profile": "fastdds-default", **default["image"]},
    }

    def ratio(x, y):
        return float(x / y) if y > 0 and math.isfinite(x) and math.isfinite(y) else float("nan")

    img, img_d, one_way = cases["image"]["rtt_ms"], cases["image_default_profile"]["rtt_ms"], \
        cases["float"]["one_way_ms"]
    ratios = {"image_default_over_profile_rtt_p50": ratio(img_d["p50"], img["p50"]),
              "image_default_over_profile_rtt_p99": ratio(img_d["p99"], img["p99"])}
    met = {}
    if policy["status"] == "ok":
        policy["overhead_ratio_p50"] = ratio(policy["latency_ms"]["p50"], one_way["p50"])
        ratios["policy_over_float_one_way_p50"] = policy["overhead_ratio_p50"]
        met = {"policy_overhead_ratio_p50": policy["overhead_ratio_p50"]
               <= TARGETS["policy_overhead_ratio_p50_max"],
               "policy_p99_ms": policy["latency_ms"]["p99"] <= TARGETS["policy_p99_ms_max"]}
    result = {
        "benchmark": "transport",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_s": round(time.time() - t0, 1),
        "host": {"python": platform.python_version(), "machine": platform.machine(),
                 "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
        "rmw": env.get("RMW_IMPLEMENTATION"), "domain_id": domain,
        "fastdds_profile": _shown(FASTDDS_PROFILE),
        "discovery_range": env.get("ROS_AUTOMATIC_DISCOVERY_RANGE"),
        "qos": "reliable, keep_last 10",
        "cases": cases, "policy": policy, "ratios": ratios,
        "targets": {**TARGETS, "met": met},
    }
    print(table(result))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {a.json}")
    return 1 if policy["status"] == "failed" else 0


def table(r: dict) -> str:
    rows = [f"transport benchmark: {r['rmw']}, ROS_DOMAIN_ID {r['domain_id']}, "
            f"{r['host']['cpus']} CPUs (load {r['host']['load_avg_1m']})",
            f"{'case':<50}{'n':>5}{'RTT p50':>10}{'RTT p99':>10}{'1-way p50':>11}{'1-way p99':>11}  ms"]
    for c in r["cases"].values():
        label = f"{c['msg']} [{c['profile']}]"
        rows.append(f"{label:<50}{c['samples']:>5}{c['rtt_ms']['p50']:>10.3f}"
                    f"{c['rtt_ms']['p99']:>10.3f}{c['one_way_ms']['p50']:>11.3f}"
                    f"{c['one_way_ms']['p99']:>11.3f}")
    p = r["policy"]
    if p["status"] == "ok":
        label = f"policy_node joint_states->command [{p['mode']}]"
        rows.append(f"{label:<50}{p['samples']:>5}"
                    f"{p['latency_ms']['p50']:>10.3f}{p['latency_ms']['p99']:>10.3f}"
                    f"{'(sensor->command latency)':>22}")
    else:
        rows.append(f"policy_node: {p['status']}: {p['reason']}")
    for t in p.get("attempts", []) if p["status"] == "ok" else []:
        rows.append(f"  (policy_node mode {t['mode']} {t['status']}: {t['reason']})")
    q = r["ratios"]
    rows.append(f"image RTT, Fast DDS default / rosmind profile: p50 x{q['image_default_over_profile_rtt_p50']:.2f}, "
                f"p99 x{q['image_default_over_profile_rtt_p99']:.2f}")
    if p["status"] == "ok":
        t = r["targets"]
        rows.append(f"policy overhead p50 / raw float one-way p50 = {p['overhead_ratio_p50']:.2f} "
                    f"(target <= {t['policy_overhead_ratio_p50_max']:g}: "
                    f"{'met' if t['met']['policy_overhead_ratio_p50'] else 'NOT met'}); "
                    f"policy p99 {p['latency_ms']['p99']:.2f} ms (target <= {t['policy_p99_ms_max']:g} ms: "
                    f"{'met' if t['met']['policy_p99_ms'] else 'NOT met'})")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rosmind_ros.bench_transport",
                                 description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="role", required=True)
    sub.add_parser("echo")
    p = sub.add_parser("ping")
    p.add_argument("--kind", choices=("float", "image"), required=True)
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--timeout", type=float, default=30.0)
    p = sub.add_parser("policy")
    p.add_argument("--robot", default="panda")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--timeout", type=float, default=30.0)
    p = sub.add_parser("run")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--domain", type=int, help="ROS_DOMAIN_ID (default: the environment's)")
    p.add_argument("--float-samples", type=int, default=500)
    p.add_argument("--float-rate", type=float, default=100.0)
    p.add_argument("--image-samples", type=int, default=200)
    p.add_argument("--image-rate", type=float, default=30.0)
    p.add_argument("--policy-samples", type=int, default=200)
    p.add_argument("--robot", default="panda")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--skip-policy", action="store_true")
    p.add_argument("--policy-modes", default="realtime,lockstep",
                   help="policy_node modes to try in order; the first that answers its ticks counts")
    a = ap.parse_args(argv)
    if a.role == "echo":
        return echo_main()
    if a.role == "ping":
        res = ping_main(a.kind, a.samples, a.rate, a.warmup, a.timeout)
    elif a.role == "policy":
        res = policy_main(a.robot, a.samples, a.warmup, a.timeout)
    else:
        return run_main(a)
    print("RESULT " + json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

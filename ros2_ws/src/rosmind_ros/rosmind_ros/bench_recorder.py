"""The recorder benchmark's ROS side (``rosmind bench recorder`` runs ``run`` in a subprocess).

``run``: starts ``recorder_node`` and a publisher process (``publish``: N cameras 640x480
rgb8 at 30 Hz, ``joint_states`` and ``wrench`` at 500 Hz, reliable QoS with one second of
history), starts an episode once every publisher matched the recorder, lets the publisher
run for ``--seconds``, stops the episode, and writes JSON: published / recorded / lost per
topic (recorded = the episode's metadata.yaml counts), the recorder's CPU use in cores (utime
+ stime from /proc/<pid>/stat over the window from the first message to the end of the
episode), and MB/s written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml

CAMERA_W, CAMERA_H = 640, 480


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def publish(args: argparse.Namespace) -> int:
    """Publisher process: READY once matched, waits for a line on stdin, publishes, prints
    ``{"published": {topic: n}, "seconds": s}``."""
    import rclpy
    from geometry_msgs.msg import WrenchStamped
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, JointState

    from rosmind_ros import conversions as cv

    rclpy.init()
    node = rclpy.create_node("bench_recorder_publisher")
    fast = QoSProfile(depth=int(args.joint_rate), reliability=ReliabilityPolicy.RELIABLE)
    slow = QoSProfile(depth=int(args.camera_rate), reliability=ReliabilityPolicy.RELIABLE)
    names = [f"joint{i}" for i in range(7)]
    streams = [("/joint_states", node.create_publisher(JointState, "joint_states", fast), args.joint_rate,
                lambda t: cv.joint_state(names, np.zeros(7), np.zeros(7), np.zeros(7), t)),
               ("/wrench", node.create_publisher(WrenchStamped, "wrench", fast), args.wrench_rate,
                lambda t: cv.wrench_stamped(np.zeros(6), t, "ft"))]
    rng = np.random.default_rng(0)
    for c in range(args.cameras):
        msg = cv.image(rng.integers(0, 255, (CAMERA_H, CAMERA_W, 3), dtype=np.uint8), "rgb8", 0.0, f"cam{c}")

        def make(t, msg=msg):  # one prebuilt frame, restamped: rendering is not what we measure
            msg.header.stamp = cv.stamp(t)
            return msg
        topic = f"camera/cam{c}/image_raw"
        streams.append(("/" + topic, node.create_publisher(Image, topic, slow), args.camera_rate, make))
    deadline = time.monotonic() + 30.0
    while any(p.get_subscription_count() < 1 for _, p, _, _ in streams):
        if time.monotonic() > deadline:
            print("publisher: the recorder never subscribed", file=sys.stderr)
            return 1
        rclpy.spin_once(node, timeout_sec=0.05)
    print("READY", flush=True)
    sys.stdin.readline()
    counts = {name: 0 for name, _, _, _ in streams}
    t0 = time.monotonic()
    nxt = [t0] * len(streams)
    end = t0 + args.seconds
    while True:
        i = int(np.argmin(nxt))
        if nxt[i] >= end:
            break
        wait = nxt[i] - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        name, pub, rate, make = streams[i]
        pub.publish(make(time.time()))
        counts[name] += 1
        nxt[i] += 1.0 / rate
    # Reliable delivery of the last samples: keep the writers alive a moment.
    time.sleep(1.0)
    print(json.dumps({"published": counts, "seconds": time.monotonic() - t0 - 1.0}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def _call(node, client, what: str, timeout: float = 30.0):
    import rclpy
    from std_srvs.srv import Trigger

    if not client.wait_for_service(timeout_sec=timeout):
        raise RuntimeError(f"recorder/{what} never appeared")
    fut = client.call_async(Trigger.Request())
    rclpy.spin_until_future_complete(node, fut, timeout_sec=timeout)
    if not fut.done() or not fut.result().success:
        raise RuntimeError(f"recorder/{what} failed: {fut.result() if fut.done() else 'no answer'}")
    return fut.result().message


def run(args: argparse.Namespace) -> int:
    import rclpy
    from std_srvs.srv import Trigger

    from rosmind.ros_env import ros_environ

    env = ros_environ(args.domain)
    os.environ.update(env)
    out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix="rosmind-bench-recorder-"))
    topics = "[joint_states, wrench, 'camera/*/image_raw']"
    rec = subprocess.Popen([sys.executable, "-m", "rosmind_ros.recorder_node", "--ros-args",
                            "-p", f"out_dir:={out_dir}", "-p", f"topics:={topics}",
                            "-p", f"compression:={args.compression}",
                            "-p", f"qos_depth:={int(args.joint_rate)}"], env=env)
    pub = subprocess.Popen([sys.executable, "-m", "rosmind_ros.bench_recorder", "publish", "--seconds", str(args.seconds),
                            "--cameras", str(args.cameras), "--camera-rate", str(args.camera_rate),
                            "--joint-rate", str(args.joint_rate), "--wrench-rate", str(args.wrench_rate)],
                           env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rclpy.init()
    node = rclpy.create_node("bench_recorder_driver")
    try:
        if pub.stdout.readline().strip() != "READY":
            raise RuntimeError("the publisher did not get ready")
        episode = Path(_call(node, node.create_client(Trigger, "recorder/start"), "start"))
        cpu0, wall0 = _cpu_seconds(rec.pid), time.monotonic()
        pub.stdin.write("GO\n")
        pub.stdin.flush()
        line = pub.stdout.readline()
        if pub.wait(timeout=args.seconds + 60) != 0 or not line:
            raise RuntimeError("the publisher failed")
        result = json.loads(line)
        _call(node, node.create_client(Trigger, "recorder/stop"), "stop", timeout=120.0)
        cpu1, wall1 = _cpu_seconds(rec.pid), time.monotonic()
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        for p in (pub, rec):
            if p.poll() is None:
                p.send_signal(2)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
    meta = yaml.safe_load((episode / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    recorded = {t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]}
    info = json.loads((episode / "episode.json").read_text())
    size = sum(f.stat().st_size for f in episode.glob("*.mcap"))
    secs = result["seconds"]
    topics_out = {}
    for name, n in result["published"].items():
        got = recorded.get(name, 0)
        topics_out[name] = {"published": n, "recorded": got, "lost": n - got,
                            "rate_hz": round(n / secs, 1), "queue_dropped": info["dropped"].get(name, 0)}
    out = {
        "benchmark": "recorder",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"python": platform.python_version(), "machine": platform.machine(),
                 "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
        "seconds": round(secs, 2),
        "setup": {"cameras": args.cameras, "camera": f"{CAMERA_W}x{CAMERA_H} rgb8 @ {args.camera_rate:g} Hz",
                  "joint_states_hz": args.joint_rate, "wrench_hz": args.wrench_rate,
                  "compression": args.compression, "qos": "reliable, keep_last 1 s of messages",
                  "rmw": env.get("RMW_IMPLEMENTATION")},
        "topics": topics_out,
        "lost_total": sum(t["lost"] for t in topics_out.values()),
        "recorder_cpu_cores": round((cpu1 - cpu0) / (wall1 - wall0), 3),
        "cpu_window_s": round(wall1 - wall0, 2),
        "mb_per_s": round(size / secs / 1e6, 2),
        "file_mb": round(size / 1e6, 1),
    }
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    if not args.keep:
        import shutil

        shutil.rmtree(out_dir if not args.out_dir else episode, ignore_errors=True)
    return 0


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--cameras", type=int, default=2)
    p.add_argument("--camera-rate", type=float, default=30.0)
    p.add_argument("--joint-rate", type=float, default=500.0)
    p.add_argument("--wrench-rate", type=float, default=500.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rosmind_ros.bench_recorder")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run")
    add_common(p_run)
    p_run.add_argument("--domain", type=int, required=True)
    p_run.add_argument("--json")
    p_run.add_argument("--out-dir", help="keep episodes here (default: a temporary folder)")
    p_run.add_argument("--compression", default="none", choices=("none", "lz4", "zstd"))
    p_run.add_argument("--keep", action="store_true", help="keep the recorded episode")
    add_common(sub.add_parser("publish"))
    args = parser.parse_args(argv)
    return publish(args) if args.cmd == "publish" else run(args)


if __name__ == "__main__":
    sys.exit(main())

"""A process that behaves as a ros2_control robot's controllers do, on their topics and types,
for testing (and dry-running) rosmind on "any ros2_control robot" with no driver code
(``launch/ros2_control.launch.yaml``):

- ``joint_state_broadcaster``: ``/joint_states`` at ``rate_hz``, joints in the hardware's own
  order (here the spec's, reversed) plus joints rosmind does not command (``extra_joints``);
- ``joint_trajectory_controller`` (topic interface): ``/joint_trajectory_controller/
  joint_trajectory``. A new trajectory replaces the current one; ``header.stamp`` 0 means
  "start now"; before its first point the reference moves from where it is to that point; it
  is interpolated between points (linearly here; the real controller uses splines) and holds
  the last point; **an empty trajectory holds the current position** (cancels); a trajectory
  whose joint names are not exactly the controller's joints is rejected (as
  ``allow_partial_joints_goal: false``);
- ``forward_position_controller`` (``forward_command_controller``): ``/forward_position_
  controller/commands``, Float64MultiArray in the controller's joint order; a wrong length is
  rejected.

The joints follow the reference with a first-order lag (``tau_s``). What was received and
rejected is counted on ``/diagnostics``.

    python -m rosmind_ros.ros2_control_emulator --robot panda
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray
    from trajectory_msgs.msg import JointTrajectory

    from rosmind.spec import load_spec

    ap = argparse.ArgumentParser(prog="python -m rosmind_ros.ros2_control_emulator", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--robot", default="panda")
    ap.add_argument("--rate-hz", type=float, default=100.0)
    ap.add_argument("--tau-s", type=float, default=0.02)
    ap.add_argument("--extra-joints", default="tool_changer_joint", help="comma-separated uncommanded joints")
    ap.add_argument("--initial", default="", help="comma-separated start positions (spec order; default 0, clipped)")
    args = ap.parse_args(argv)
    spec = load_spec(args.robot)
    names = list(spec.joint_names)
    extra = [j for j in args.extra_joints.split(",") if j]
    lo, hi = np.array(spec.limits("lower")), np.array(spec.limits("upper"))
    start = [float(v) for v in args.initial.split(",")] if args.initial else [0.0] * spec.dof
    if len(start) != spec.dof:
        ap.error(f"--initial: {spec.dof} values for {spec.name}'s joints {list(spec.joint_names)}")
    q = np.clip(np.array(start), lo, hi)
    state = {"q": q, "ref": q.copy(), "traj": None, "counts": dict.fromkeys(
        ("trajectories", "empty_trajectories", "position_commands", "rejected"), 0)}
    lock = threading.Lock()

    rclpy.init(args=None)
    node = rclpy.create_node("controller_manager")
    js = node.create_publisher(JointState, "/joint_states", 10)
    diag = node.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def now() -> float:
        return time.time()

    def on_trajectory(msg: JointTrajectory) -> None:
        with lock:
            c = state["counts"]
            if not msg.points:  # JTC: an empty trajectory cancels: hold where the reference is
                state["traj"] = None
                c["empty_trajectories"] += 1
                return
            if sorted(msg.joint_names) != sorted(names):
                c["rejected"] += 1
                node.get_logger().error(f"joint_trajectory: joints {list(msg.joint_names)} are not the controller's {names}")
                return
            idx = [list(msg.joint_names).index(n) for n in names]
            pts = np.array([[p.positions[i] for i in idx] for p in msg.points], dtype=np.float64)
            times = np.array([p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points])
            if not np.all(np.isfinite(pts)) or np.any(np.diff(times) < 0):
                c["rejected"] += 1
                return
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            start = stamp if stamp > 0 else now()
            # Before the first point: from the reference now to that point.
            state["traj"] = (np.concatenate([[now() - start], times]), np.vstack([state["ref"], pts]), start)
            c["trajectories"] += 1

    def on_commands(msg: Float64MultiArray) -> None:
        with lock:
            v = np.asarray(msg.data, dtype=np.float64)
            if v.shape != (len(names),) or not np.all(np.isfinite(v)):
                state["counts"]["rejected"] += 1
                return
            state["traj"] = None
            state["ref"] = v
            state["counts"]["position_commands"] += 1

    node.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory", on_trajectory, 10)
    node.create_subscription(Float64MultiArray, "/forward_position_controller/commands", on_commands, 10)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    stop = threading.Event()

    def loop():
        dt, last_diag = 1.0 / args.rate_hz, 0.0
        order = names[::-1] + extra
        while not stop.wait(dt):
            t = now()
            with lock:
                traj = state["traj"]
                if traj is not None:
                    times, pts, start = traj
                    s = t - start
                    ref = np.array([np.interp(s, times, pts[:, j]) for j in range(len(names))])
                    state["ref"] = ref
                a = min(1.0, dt / max(args.tau_s, 1e-6))
                state["q"] = state["q"] + a * (state["ref"] - state["q"])
                q = state["q"].copy()
                counts = dict(state["counts"])
            msg = JointState(name=order, position=[*q[::-1].tolist(), *[0.0] * len(extra)])
            sec = int(t)
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, int((t - sec) * 1e9)
            js.publish(msg)
            if t - last_diag > 0.5:
                last_diag = t
                d = DiagnosticArray()
                d.status = [DiagnosticStatus(name="controller_manager: emulated controllers", message="ok",
                                             values=[KeyValue(key=k, value=str(v)) for k, v in counts.items()])]
                diag.publish(d)

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    print(f"ros2_control emulator for {spec.name}: joints {names}", flush=True)
    try:
        while rclpy.ok():
            ex.spin_once(timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        worker.join(timeout=2)
        node.destroy_node()
        try:
            rclpy.shutdown()
        except Exception:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

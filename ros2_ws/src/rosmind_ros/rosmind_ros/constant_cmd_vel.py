"""constant_cmd_vel: publishes one velocity command (geometry_msgs/Twist on ``cmd_vel``) at a
fixed wall-clock rate until stopped: a scripted operator for benchmarks and demos.

    python -m rosmind_ros.constant_cmd_vel 0.5 0.0 0.2 --rate 100    # vx (m/s), vy (m/s), yaw rate (rad/s)
"""

from __future__ import annotations

import argparse
import math
import sys

import rclpy
from geometry_msgs.msg import Twist
from rclpy.executors import ExternalShutdownException


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="constant_cmd_vel", description=__doc__.strip().splitlines()[0])
    p.add_argument("vx", type=float)
    p.add_argument("vy", type=float)
    p.add_argument("yaw_rate", type=float)
    p.add_argument("--rate", type=float, default=50.0, help="messages per second (wall clock)")
    args, ros_args = p.parse_known_args(argv if argv is not None else sys.argv[1:])
    values = (args.vx, args.vy, args.yaw_rate, args.rate)
    if not all(math.isfinite(v) for v in values) or args.rate <= 0:
        p.error(f"vx, vy, yaw_rate must be finite and --rate > 0, got {values}")
    rclpy.init(args=["constant_cmd_vel", *ros_args])
    node = rclpy.create_node("constant_cmd_vel")
    pub = node.create_publisher(Twist, "cmd_vel", 10)
    msg = Twist()
    msg.linear.x, msg.linear.y, msg.angular.z = args.vx, args.vy, args.yaw_rate
    node.create_timer(1.0 / args.rate, lambda: pub.publish(msg))
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()

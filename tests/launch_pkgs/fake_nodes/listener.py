"""rclpy node: prints ``heard: <data>`` for each std_msgs/String on ``chatter``; spun by
rosmind's own ``run_node``, so a SIGINT from the launcher is an orderly stop."""

import sys

import rclpy
from std_msgs.msg import String

from rosmind_ros.params import run_node

heard = [0]


def make_node():
    node = rclpy.create_node("listener")

    def on_msg(msg):
        heard[0] += 1
        print(f"heard: {msg.data} (ns {node.get_namespace()})", flush=True)

    node.create_subscription(String, "chatter", on_msg, 10)
    return node


code = run_node(make_node)
print(f"listener: clean shutdown after {heard[0]} messages", flush=True)
sys.exit(code)

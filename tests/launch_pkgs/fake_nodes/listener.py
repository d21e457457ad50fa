"""rclpy node: prints ``heard: <data>`` for each std_msgs/String on ``chatter``."""

import sys

import rclpy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String

from fake_nodes._spin import spin_until_signal

rclpy.init(args=sys.argv, signal_handler_options=SignalHandlerOptions.NO)
node = rclpy.create_node("listener")
heard = [0]


def on_msg(msg):
    heard[0] += 1
    print(f"heard: {msg.data} (ns {node.get_namespace()})", flush=True)


node.create_subscription(String, "chatter", on_msg, 10)
spin_until_signal(node)
print(f"listener: clean shutdown after {heard[0]} messages", flush=True)
node.destroy_node()
rclpy.try_shutdown()

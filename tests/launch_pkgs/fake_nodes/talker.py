"""rclpy node: publishes std_msgs/String on ``chatter`` every ``period`` s; prints its typed
parameters once (``PARAMS {...}``); with ``crash_after`` > 0 it exits with ``crash_code``."""

import json
import os
import sys

import rclpy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String

from fake_nodes._spin import spin_until_signal

rclpy.init(args=sys.argv, signal_handler_options=SignalHandlerOptions.NO)
node = rclpy.create_node("talker")
p = {n: node.declare_parameter(n, v).value for n, v in (
    ("prefix", "hello"), ("period", 0.05), ("crash_after", 0.0), ("crash_code", 3),
    ("flags", [False]), ("gains", [0.0]), ("names", ["x"]), ("label", "x"))}
print("PARAMS " + json.dumps({k: [type(v).__name__, v] for k, v in p.items()}), flush=True)
pub = node.create_publisher(String, "chatter", 10)
count = [0]


def tick():
    count[0] += 1
    pub.publish(String(data=f"{p['prefix']} {count[0]}"))
    if p["crash_after"] > 0 and count[0] * p["period"] >= p["crash_after"]:
        print(f"talker crashing with {p['crash_code']}", flush=True)
        os._exit(p["crash_code"])


node.create_timer(p["period"], tick)
spin_until_signal(node)
print(f"talker: clean shutdown after {count[0]} messages", flush=True)
node.destroy_node()
rclpy.try_shutdown()

"""rclpy node: publishes std_msgs/String on ``chatter`` every ``period`` s; prints its typed
parameters once (``PARAMS {...}``); with ``crash_after`` > 0 it exits with ``crash_code``.
Spun by rosmind's own ``run_node``, so a SIGINT from the launcher is an orderly stop."""

import json
import os
import sys

import rclpy
from std_msgs.msg import String

from rosmind_ros.params import run_node

count = [0]


def make_node():
    node = rclpy.create_node("talker")
    p = {n: node.declare_parameter(n, v).value for n, v in (
        ("prefix", "hello"), ("period", 0.05), ("crash_after", 0.0), ("crash_code", 3),
        ("flags", [False]), ("gains", [0.0]), ("names", ["x"]), ("label", "x"))}
    print("PARAMS " + json.dumps({k: [type(v).__name__, v] for k, v in p.items()}), flush=True)
    pub = node.create_publisher(String, "chatter", 10)

    def tick():
        count[0] += 1
        pub.publish(String(data=f"{p['prefix']} {count[0]}"))
        if p["crash_after"] > 0 and count[0] * p["period"] >= p["crash_after"]:
            print(f"talker crashing with {p['crash_code']}", flush=True)
            os._exit(p["crash_code"])

    node.create_timer(p["period"], tick)
    return node


code = run_node(make_node)
print(f"talker: clean shutdown after {count[0]} messages", flush=True)
sys.exit(code)

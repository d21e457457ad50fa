"""replay node: sends a recorded episode's commands back through safety_node to the robot.

Parameters (``ReplayConfig``): ``episode`` (an episode directory written by recorder_node),
``source`` (``outputs``: what the robot received, ``joint_trajectory`` /
``forward_position_controller/commands``; ``inputs``: what was asked of safety,
``safety/joint_trajectory`` / ``safety/commands``), ``speed`` (1.0 = recorded timing),
``wait_s`` (for safety_node to subscribe). Publishes ``safety/joint_trajectory`` (restamped
0 = "now": safety stamps it on arrival) and ``safety/commands`` at the recorded receive-time
offsets, then exits 0. Meant for robots stepping on the wall clock (real hardware, or the sim
with ``mode:=realtime``); nothing bypasses safety_node.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Literal

from rclpy.node import Node
from rclpy.serialization import deserialize_message
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from rosmind.episodes import replay_commands
from rosmind.errors import SpecError
from rosmind_ros.params import declare_from_dataclass, run_node


@dataclass
class ReplayConfig:
    episode: str
    source: Literal["outputs", "inputs"] = "outputs"
    speed: float = 1.0
    wait_s: float = 10.0

    def __post_init__(self):
        if not self.speed > 0:
            raise SpecError(f"ReplayConfig.speed: must be > 0, got {self.speed}")
        if self.wait_s < 0:
            raise SpecError(f"ReplayConfig.wait_s: must be >= 0, got {self.wait_s}")


class ReplayNode(Node):
    def __init__(self):
        super().__init__("replay")
        self.cfg = cfg = declare_from_dataclass(self, ReplayConfig)
        self.commands = replay_commands(cfg.episode, cfg.source)  # DatasetError: a UserError
        self.pub = {"trajectory": self.create_publisher(JointTrajectory, "safety/joint_trajectory", 10),
                    "commands": self.create_publisher(Float64MultiArray, "safety/commands", 10)}
        self.exit_code: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        log = self.get_logger()
        kinds = {c.kind for c in self.commands}
        deadline = time.monotonic() + self.cfg.wait_s
        while any(self.pub[k].get_subscription_count() == 0 for k in kinds):
            if time.monotonic() > deadline or self._stop.is_set():
                log.error(f"safety_node did not subscribe within {self.cfg.wait_s:g} s "
                          "(is it running in this namespace and domain?)")
                self.exit_code = 1
                return
            time.sleep(0.05)
        log.info(f"replaying {len(self.commands)} commands ({self.commands[-1].t_s:.1f} s) "
                 f"from {self.cfg.episode} through safety")
        t0 = time.monotonic()
        for c in self.commands:
            wait = t0 + c.t_s / self.cfg.speed - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            if c.kind == "trajectory":
                msg = deserialize_message(c.data, JointTrajectory)
                msg.header.stamp.sec, msg.header.stamp.nanosec = 0, 0
                self.pub["trajectory"].publish(msg)
            else:
                self.pub["commands"].publish(c.data)  # already CDR
        time.sleep(0.2)  # let the last message leave before the process exits
        log.info("replay done")
        self.exit_code = 0

    def destroy_node(self):
        self._stop.set()
        self._thread.join(timeout=2.0)
        return super().destroy_node()


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_node(ReplayNode, argv))


if __name__ == "__main__":
    main()

"""A leader arm as a teleop device (LeRobot's SO-100 / Koch leader-follower setup): a second,
unpowered copy of the arm that the operator moves by hand; its joint angles are the follower's
joint command, through teleop_node's joint mode and safety_node like any teleop.

    rosmind launch launch/hw_leader_follower.launch.yaml robot:=so100 port:=/dev/ttyACM0 \\
        leader_port:=/dev/ttyACM1

The leader's servos stay torque-off (it is moved by hand); each ``poll()`` is one sync read.
The deadman is "the leader answers": if its bus fails the command has the deadman released,
``connected`` turns False, and the follower holds (safety_node's watchdog). The leader's
calibration maps its ticks to the same joint angles as the follower's (``rosmind calibrate``
for each arm, in the same zero pose).
"""

from __future__ import annotations

from dataclasses import dataclass

from rosmind.errors import HardwareError, SpecError
from rosmind.hardware.teleop.devices import Device
from rosmind.registry import DEVICES
from rosmind.teleop import TeleopCommand


@dataclass
class LeaderArmConfig:
    robot: str = "so100"  # the leader's spec (the same joints as the follower's)
    port: str = ""
    calibration: str = ""  # "" = the spec's mid-range zero


@DEVICES.register("leader_arm", config=LeaderArmConfig)
class LeaderArmDevice(Device):
    name = "leader_arm"
    joint_commands = True

    def __init__(self, cfg: LeaderArmConfig):
        super().__init__()
        self.cfg = cfg
        self.arm = None
        self.error = ""

    def open(self) -> None:
        from rosmind.hardware.drivers import make_hardware

        if not self.cfg.port:
            raise SpecError("leader_arm: needs port (the leader arm's serial port, e.g. /dev/ttyACM1)")
        options = {"port": self.cfg.port, **({"calibration": self.cfg.calibration} if self.cfg.calibration else {})}
        self.arm = make_hardware(self.cfg.robot, **options)
        self.arm.connect()  # torque stays off: the operator moves it
        self._connected = True

    def poll(self) -> TeleopCommand:
        if self.arm is None:
            return TeleopCommand()
        try:
            q = self.arm.read()["joint_pos"]
        except HardwareError as e:
            self.error, self._connected = str(e), False
            return TeleopCommand()  # deadman released: the follower is not commanded
        self.error, self._connected = "", True
        return TeleopCommand(deadman=True, joints=q)

    def close(self) -> None:
        if self.arm is not None:
            try:
                self.arm.disconnect()
            except HardwareError:
                pass
            self.arm = None
        self._connected = False

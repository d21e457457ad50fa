"""Franka Emika Panda / FR3 through ``pylibfranka`` (FCI): the robot's 1 kHz joint-position
control loop fed by rosmind's 20 Hz setpoints.

    arm = FrankaArm(load_spec("panda"), host="172.16.0.2")
    arm.connect()      # FCI connection (Desk: FCI mode on, brakes open); collision thresholds set
    arm.enable()       # starts joint position control (joint impedance) holding the measured pose;
                       # a thread runs readOnce/writeOnce at 1 kHz, stepping toward the newest
                       # target within the spec's velocity and acceleration limits (0.5 of them)
    arm.write(q)       # q [8]: 7 joints + finger opening (the gripper moves when it changes > 5 mm)
    arm.disable()      # stop(): the robot decelerates and holds with its brakes
    arm.disconnect()

libfranka stops the motion with a ``ControlException`` when commands are not smooth or late
(reflex); the loop then ends, ``read()`` raises ``HardwareError`` with the robot's error, and
``enable()`` again runs ``automatic_error_recovery`` first.

Tested without a robot as far as the SDK allows: the connection error when no FCI answers,
and the 1 kHz interpolation (``FrankaArm.next_setpoint``) against the spec's limits. The control
loop itself needs a robot (docs/hardware/franka.md).
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np

from rosmind.errors import HardwareError, SpecError
from rosmind.hardware.drivers import DRIVERS
from rosmind.robot import HardwareRobot, checked_positions
from rosmind.spec import RobotSpec
from rosmind.trajectory import SetpointLimiter

FCI_PERIOD = 0.001


class FrankaArm(HardwareRobot):
    def __init__(self, spec: RobotSpec, host: str = "", margin: float = 0.5, realtime: bool = False):
        if spec.dof != 8:
            raise SpecError(f"franka driver: robot {spec.name!r} has {spec.dof} joints; expected 7 + a finger")
        if not host:
            raise SpecError(f"robot {spec.name!r}: the Franka driver needs host (the robot's FCI address)")
        self.spec, self.host, self.realtime = spec, host, realtime
        arm = dataclasses.replace(spec, joints=spec.joints[:7])  # the 1 kHz loop drives the 7 joints
        self.limiter = SetpointLimiter(arm, margin, dt=FCI_PERIOD)
        self.robot = self.gripper = None
        self._lock = threading.Lock()
        self._state = None
        self._target: np.ndarray | None = None
        self._finger = None
        self._error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def device(self) -> str:
        return f"Franka FCI {self.host}"

    def connect(self) -> None:
        import pylibfranka as fr

        try:
            cfg = fr.RealtimeConfig.kEnforce if self.realtime else fr.RealtimeConfig.kIgnore
            self.robot = fr.Robot(self.host, cfg)
            self.gripper = fr.Gripper(self.host)
        except Exception as e:  # NetworkException, IncompatibleVersionException, ... (not all FrankaException)
            raise HardwareError(f"{self.device}: {type(e).__name__}: {e} (Desk: unlock the brakes and activate FCI; check the "
                                "address and the control box's network)") from None
        # Torque / force thresholds above which the robot stops (a contact reflex): libfranka's
        # example values, generous enough for contact tasks.
        self.robot.set_collision_behavior([20.0] * 7, [20.0] * 7, [20.0] * 6, [20.0] * 6)

    def next_setpoint(self, target: np.ndarray) -> np.ndarray:
        """One 1 kHz step from the last setpoint toward ``target`` [7] within the limits."""
        return self.limiter(target)

    def _loop(self, control) -> None:
        import pylibfranka as fr

        try:
            while not self._stop.is_set():
                state, _ = control.readOnce()
                with self._lock:
                    self._state, target = state, self._target
                q = self.next_setpoint(target)
                cmd = fr.JointPositions(q.tolist())
                if self._stop.is_set():
                    cmd.motion_finished = True
                control.writeOnce(cmd)
        except Exception as e:  # ControlException (a reflex), NetworkException
            self._error = f"{self.device}: the robot stopped the motion: {type(e).__name__}: {e}"

    def enable(self) -> None:
        import pylibfranka as fr

        if self._error:
            self.robot.automatic_error_recovery()
            self._error = ""
        state = self.robot.read_once()
        q = np.asarray(state.q, dtype=np.float64)
        self.limiter.reset(q)
        with self._lock:
            self._state, self._target = state, q.copy()
        control = self.robot.start_joint_position_control(fr.ControllerMode.JointImpedance)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(control,), name="franka_1khz", daemon=True)
        self._thread.start()

    def disable(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self.robot is not None:
            self.robot.stop()

    def disconnect(self) -> None:
        self.disable()
        self.robot = self.gripper = None

    def read(self) -> dict[str, np.ndarray]:
        if self._error:
            raise HardwareError(self._error)
        if self.robot is None:
            raise HardwareError(f"{self.device}: not connected")
        with self._lock:
            state = self._state if self._thread is not None else None
        if state is None:
            state = self.robot.read_once()
        width = self.gripper.read_once().width if self.gripper is not None else 0.0
        return {"stamp": np.array(time.time()),
                "joint_pos": np.append(np.asarray(state.q), width / 2),
                "joint_vel": np.append(np.asarray(state.dq), 0.0),
                "joint_effort": np.append(np.asarray(state.tau_J), 0.0),
                "wrench": np.asarray(state.K_F_ext_hat_K, dtype=np.float64)}

    def write(self, positions) -> np.ndarray:
        q = checked_positions(self.spec, positions, f"{self.spec.name}.write")
        if self._thread is None:
            raise HardwareError(f"{self.spec.name}: write before enable(): nothing sent")
        q = np.clip(q, self.spec.limits("lower"), self.spec.limits("upper"))
        with self._lock:
            self._target = q[:7].copy()
        finger = float(q[7])
        if self._finger is None or abs(finger - self._finger) > 0.005:  # the gripper: its own slow action
            self._finger = finger
            threading.Thread(target=self.gripper.move, args=(2 * finger, 0.1), daemon=True).start()
        return q


DRIVERS.register("franka")(FrankaArm)

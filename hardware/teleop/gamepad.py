"""Gamepad teleop through pygame's joystick layer (SDL; headless with the dummy video driver).

Default mapping (Xbox-style layout as SDL reports it; every index is a config field)::

    left stick   x -> -vy, y -> -vx  (stick up = +x, stick left = +y)
    right stick  x -> -wz (yaw), y -> vz (stick up = +z: SDL's y axis points down, hence the sign)
    LB (4) held  deadman          A (0) gripper toggle          RT axis (5) analog close (optional)

Events come from pygame's queue (``pygame.event.get``): JOYAXISMOTION, JOYBUTTONDOWN/UP,
JOYDEVICEADDED/REMOVED. ``handle(event)`` is the event layer; tests post real pygame events
into the queue and ``poll()`` consumes them. A JOYDEVICEREMOVED for the open stick turns
``connected`` False and releases the deadman; a JOYDEVICEADDED opens the new stick.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from rosmind.errors import SpecError
from rosmind.hardware.teleop.devices import Device
from rosmind.registry import DEVICES
from rosmind.teleop import TeleopCommand


@dataclass
class GamepadConfig:
    index: int = 0  # which joystick (SDL device index)
    # twist component <- (axis index, sign); -1 = unmapped
    axes: tuple[int, ...] = (1, 0, 4, -1, -1, 3)
    signs: tuple[float, ...] = (-1.0, -1.0, -1.0, 1.0, 1.0, -1.0)
    deadman_button: int = 4
    gripper_button: int = 0
    gripper_axis: int = -1  # analog closure axis (-1 = off; a trigger rests at -1, full at +1)

    def __post_init__(self):
        if len(self.axes) != 6 or len(self.signs) != 6:
            raise SpecError("GamepadConfig.axes/signs: need 6 entries (vx vy vz wx wy wz), "
                            f"got {len(self.axes)}/{len(self.signs)}")
        if self.index < 0 or self.deadman_button < 0:
            raise SpecError("GamepadConfig.index/deadman_button: must be >= 0")


@DEVICES.register("gamepad", config=GamepadConfig)
class GamepadDevice(Device):
    name = "gamepad"

    def __init__(self, cfg: GamepadConfig | None = None):
        super().__init__()
        self.cfg = cfg or GamepadConfig()
        self._pg = None
        self._stick = None
        self._instance_id: int | None = None
        self._axes: dict[int, float] = {}
        self._held: set[int] = set()
        self._buttons: list[str] = []

    def open(self) -> None:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self._pg = pygame
        pygame.display.init()  # the event queue lives in the video subsystem
        pygame.joystick.init()
        if pygame.joystick.get_count() > self.cfg.index:
            self._attach(self.cfg.index)

    def _attach(self, device_index: int) -> None:
        try:
            stick = self._pg.joystick.Joystick(device_index)
        except self._pg.error:
            return
        self._stick, self._instance_id = stick, stick.get_instance_id()
        self._axes.clear()
        self._held.clear()
        self._connected = True

    def _detach(self) -> None:
        self._stick, self._instance_id = None, None
        self._held.clear()
        self._axes.clear()
        self._connected = False

    def close(self) -> None:
        if self._pg is not None:
            self._pg.joystick.quit()
            self._pg.display.quit()
        self._pg = None
        self._detach()

    def _ours(self, event) -> bool:
        iid = getattr(event, "instance_id", getattr(event, "joy", None))
        return self._instance_id is None or iid == self._instance_id

    def handle(self, event) -> None:
        """Apply one pygame event."""
        pg = self._pg
        if event.type == pg.JOYDEVICEADDED:
            if self._stick is None and event.device_index == self.cfg.index:
                self._attach(event.device_index)
        elif event.type == pg.JOYDEVICEREMOVED:
            if event.instance_id == self._instance_id:
                self._detach()
        elif not self._ours(event):
            return
        elif event.type == pg.JOYAXISMOTION:
            self._axes[event.axis] = float(event.value)
        elif event.type == pg.JOYBUTTONDOWN:
            self._held.add(event.button)
            if event.button == self.cfg.gripper_button:
                self._buttons.append("gripper_toggle")
        elif event.type == pg.JOYBUTTONUP:
            self._held.discard(event.button)

    def command(self) -> TeleopCommand:
        twist = np.array([self._axes.get(a, 0.0) * s if a >= 0 else 0.0
                          for a, s in zip(self.cfg.axes, self.cfg.signs, strict=True)])
        gripper = None
        if self.cfg.gripper_axis >= 0 and self.cfg.gripper_axis in self._axes:
            gripper = (self._axes[self.cfg.gripper_axis] + 1.0) / 2.0
        buttons, self._buttons = tuple(self._buttons), []
        return TeleopCommand(twist=twist, gripper=gripper,
                             deadman=self.cfg.deadman_button in self._held, buttons=buttons)

    def poll(self) -> TeleopCommand:
        if self._pg is not None:
            for event in self._pg.event.get((self._pg.JOYAXISMOTION, self._pg.JOYBUTTONDOWN,
                                             self._pg.JOYBUTTONUP, self._pg.JOYDEVICEADDED,
                                             self._pg.JOYDEVICEREMOVED)):
                self.handle(event)
        return self.command()

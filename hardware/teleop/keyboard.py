"""Keyboard teleop in a terminal (cbreak mode through termios: works over SSH, Ctrl-C still works).

Keys (base frame)::

    w / s   +x / -x        a / d   +y / -y        r / f   +z / -z
    arrows  up/down: pitch (wy) +/-, left/right: yaw (wz) +/-      q / e   roll (wx) +/-
    space   deadman toggle (a terminal sees no key releases, so "hold" cannot be detected)
    x       deadman off        g   gripper toggle

A terminal reports a held key as one press, a pause (the autorepeat delay, ~0.25-0.6 s), then
repeats; an axis therefore stays at full scale for ``key_hold_s`` after its last press, which
bridges the autorepeat delay and stops the motion that long after the key is let go.
``feed(data, now)`` is the byte-level event layer (tests write bytes into a pty).
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from dataclasses import dataclass

import numpy as np

from rosmind.errors import SpecError
from rosmind.hardware.teleop.devices import Device
from rosmind.registry import DEVICES
from rosmind.teleop import TeleopCommand

# key -> (twist axis, sign)
MOTION_KEYS = {"w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "r": (2, 1), "f": (2, -1),
               "q": (3, 1), "e": (3, -1), "UP": (4, 1), "DOWN": (4, -1),
               "LEFT": (5, 1), "RIGHT": (5, -1)}
_ARROWS = {"A": "UP", "B": "DOWN", "C": "RIGHT", "D": "LEFT"}


@dataclass
class KeyboardConfig:
    tty: str = ""  # "" = this process's stdin; else a terminal device path, e.g. /dev/pts/3
    key_hold_s: float = 0.6  # an axis stays on this long after its key's last press

    def __post_init__(self):
        if not self.key_hold_s > 0:
            raise SpecError(f"KeyboardConfig.key_hold_s: must be > 0, got {self.key_hold_s!r}")


def parse_keys(data: bytes) -> list[str]:
    """Raw terminal bytes -> key names (letters lower-cased, ``UP``/``DOWN``/``LEFT``/``RIGHT``,
    ``SPACE``); unknown escape sequences are dropped."""
    keys: list[str] = []
    text = data.decode("latin-1")
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\x1b":
            # CSI (ESC [ X) or SS3 (ESC O X) arrow sequences
            if i + 2 < len(text) and text[i + 1] in "[O" and text[i + 2] in _ARROWS:
                keys.append(_ARROWS[text[i + 2]])
                i += 3
                continue
            i += 1
            if i < len(text) and text[i] in "[O":  # skip an unknown CSI/SS3 up to its final byte
                i += 1
                while i < len(text) and not "@" <= text[i] <= "~":
                    i += 1
                i += 1
            continue
        keys.append("SPACE" if c == " " else c.lower())
        i += 1
    return keys


@DEVICES.register("keyboard", config=KeyboardConfig)
class KeyboardDevice(Device):
    name = "keyboard"

    def __init__(self, cfg: KeyboardConfig | None = None):
        super().__init__()
        self.cfg = cfg or KeyboardConfig()
        self._fd: int | None = None
        self._own_fd = False
        self._saved = None
        self._last_press = np.full(6, -np.inf)
        self._sign = np.zeros(6)
        self._deadman = False
        self._buttons: list[str] = []

    def open(self) -> None:
        if self.cfg.tty:
            try:
                self._fd = os.open(self.cfg.tty, os.O_RDONLY | os.O_NOCTTY)
            except OSError as e:
                raise SpecError(f"keyboard: cannot open terminal {self.cfg.tty!r}: {e}") from None
            self._own_fd = True
        else:
            self._fd = sys.stdin.fileno()
        if not os.isatty(self._fd):
            self.close()
            raise SpecError("keyboard: needs a terminal (stdin is not a tty; run the node in a "
                            "terminal or set option tty:=/dev/pts/N)")
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)  # no echo, no line buffering; ISIG kept so Ctrl-C still works
        self._connected = True

    def close(self) -> None:
        if self._fd is not None:
            if self._saved is not None:
                try:
                    termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
                except termios.error:
                    pass
            if self._own_fd:
                os.close(self._fd)
        self._fd, self._saved, self._own_fd = None, None, False
        self._connected = False

    def feed(self, data: bytes, now: float) -> None:
        """Apply raw terminal bytes received at ``now`` (monotonic seconds)."""
        for k in parse_keys(data):
            if k in MOTION_KEYS:
                axis, sign = MOTION_KEYS[k]
                self._last_press[axis], self._sign[axis] = now, sign
            elif k == "SPACE":
                self._deadman = not self._deadman
            elif k == "x":
                self._deadman = False
            elif k == "g":
                self._buttons.append("gripper_toggle")

    def command(self, now: float) -> TeleopCommand:
        """The state at ``now``; pending button events are handed out once."""
        live = (now - self._last_press) <= self.cfg.key_hold_s
        buttons, self._buttons = tuple(self._buttons), []
        return TeleopCommand(twist=np.where(live, self._sign, 0.0), deadman=self._deadman,
                             buttons=buttons)

    def poll(self) -> TeleopCommand:
        now = time.monotonic()
        if self._fd is not None and self._connected:
            try:
                while select.select([self._fd], [], [], 0)[0]:
                    data = os.read(self._fd, 1024)
                    if not data:  # EOF: the terminal (SSH session) went away
                        raise OSError("end of input")
                    self.feed(data, now)
            except OSError:
                self._connected = False
                self._deadman = False
        return self.command(now)

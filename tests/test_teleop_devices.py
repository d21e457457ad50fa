"""Teleop devices: the registry contract, and each device's event layer fed real events
(terminal bytes through a pty, pygame events through SDL's queue, raw HID reports, a real
websocket to the web server), plus the web page's token and origin enforcement."""

from __future__ import annotations

import json
import os
import pty
import struct
import termios
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from rosmind.errors import SpecError, UnknownNameError
from rosmind.hardware.teleop.devices import Device, make_device
from rosmind.hardware.teleop.gamepad import GamepadDevice
from rosmind.hardware.teleop.keyboard import KeyboardConfig, KeyboardDevice, parse_keys
from rosmind.hardware.teleop.spacemouse import SpaceMouseDevice, parse_report
from rosmind.hardware.teleop.web import WebConfig, WebDevice, parse_input
from rosmind.registry import DEVICES
from rosmind.teleop import TeleopCommand

pytestmark = pytest.mark.unit


def test_registry_holds_every_device_and_builds_from_defaults():
    assert {"keyboard", "gamepad", "spacemouse", "web"} <= set(DEVICES.names())
    for name in DEVICES.names():
        entry = DEVICES.get(name)
        dev = entry.factory(entry.config())
        assert isinstance(dev, Device) and not dev.connected, name
        cmd = dev.poll()  # before open: a released deadman, never an exception
        assert isinstance(cmd, TeleopCommand) and not cmd.deadman, name
        dev.close()  # idempotent before open
    with pytest.raises(UnknownNameError, match="unknown teleop device 'joystik'.*gamepad"):
        make_device("joystik")
    with pytest.raises(SpecError, match=r"unknown option\(s\) \['prot'\]"):
        make_device("web", {"prot": 1})


def test_keyboard_parses_keys_and_escape_sequences():
    assert parse_keys(b"wA \x1b[A\x1bOD\x1b[1;5Cg\x1bx") == ["w", "a", "SPACE", "UP", "LEFT", "g", "x"]


def test_keyboard_through_a_pty_in_cbreak_mode():
    master, slave = pty.openpty()
    path = os.ttyname(slave)
    dev = KeyboardDevice(KeyboardConfig(tty=path, key_hold_s=0.3))
    try:
        before = termios.tcgetattr(slave)
        dev.open()
        assert dev.connected
        lflag = termios.tcgetattr(slave)[3]
        assert not lflag & termios.ICANON and not lflag & termios.ECHO  # cbreak
        assert lflag & termios.ISIG  # Ctrl-C still interrupts
        os.write(master, b"w")
        cmd = _poll_until(dev, lambda c: c.twist[0] == 1.0)
        assert not cmd.deadman
        os.write(master, b" \x1b[Dg")  # deadman on, yaw left, gripper
        cmd = _poll_until(dev, lambda c: c.deadman)
        np.testing.assert_array_equal(cmd.twist, [1, 0, 0, 0, 0, 1])
        assert cmd.buttons == ("gripper_toggle",)
        assert dev.poll().buttons == ()  # a button event is handed out once
        # An axis lapses key_hold_s after its last press (the state is a function of time).
        t_press = dev._last_press[0]
        assert dev.command(t_press + 0.29).twist[0] == 1.0
        assert dev.command(t_press + 0.31).twist[0] == 0.0
        os.write(master, b"x")
        assert not _poll_until(dev, lambda c: not c.deadman).deadman
        dev.close()
        assert termios.tcgetattr(slave)[3] == before[3]  # terminal restored
        dev.open()
        os.write(master, b" ")
        _poll_until(dev, lambda c: c.deadman)
        os.close(master)  # the terminal goes away (SSH dropped)
        master = None
        cmd = _poll_until(dev, lambda c: not dev.connected)
        assert not cmd.deadman
    finally:
        dev.close()
        if master is not None:
            os.close(master)
        os.close(slave)


def _poll_until(dev: Device, pred, timeout: float = 5.0) -> TeleopCommand:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        cmd = dev.poll()
        if pred(cmd):
            return cmd
        time.sleep(0.01)
    pytest.fail(f"{dev.name}: condition not met within {timeout} s")


def test_gamepad_maps_injected_pygame_events():
    pygame = pytest.importorskip("pygame")
    dev = GamepadDevice()
    dev.open()
    try:
        post = pygame.event.post
        # Left stick pushed up-left, right stick up, LB (deadman) held, A pressed and released.
        post(pygame.event.Event(pygame.JOYAXISMOTION, joy=0, instance_id=0, axis=1, value=-0.8))
        post(pygame.event.Event(pygame.JOYAXISMOTION, joy=0, instance_id=0, axis=0, value=-0.5))
        post(pygame.event.Event(pygame.JOYAXISMOTION, joy=0, instance_id=0, axis=4, value=-1.0))
        post(pygame.event.Event(pygame.JOYBUTTONDOWN, joy=0, instance_id=0, button=4))
        post(pygame.event.Event(pygame.JOYBUTTONDOWN, joy=0, instance_id=0, button=0))
        post(pygame.event.Event(pygame.JOYBUTTONUP, joy=0, instance_id=0, button=0))
        cmd = dev.poll()
        np.testing.assert_allclose(cmd.twist, [0.8, 0.5, 1.0, 0, 0, 0])
        assert cmd.deadman and cmd.buttons == ("gripper_toggle",)
        post(pygame.event.Event(pygame.JOYBUTTONUP, joy=0, instance_id=0, button=4))
        assert not dev.poll().deadman
        # A stick that is open, then unplugged: disconnected, deadman released.
        dev._instance_id, dev._connected = 0, True
        post(pygame.event.Event(pygame.JOYBUTTONDOWN, joy=0, instance_id=0, button=4))
        assert dev.poll().deadman
        post(pygame.event.Event(pygame.JOYDEVICEREMOVED, instance_id=0))
        cmd = dev.poll()
        assert not dev.connected and not cmd.deadman
    finally:
        dev.close()


def test_spacemouse_parses_both_report_formats():
    old_t = bytes([1]) + struct.pack("<3h", 100, -350, 35)
    old_r = bytes([2]) + struct.pack("<3h", 0, 175, -700)
    new = bytes([1]) + struct.pack("<6h", 100, -350, 35, 0, 175, -700)
    assert parse_report(old_t) == {"translation": [100, -350, 35]}
    assert parse_report(old_r) == {"rotation": [0, 175, -700]}
    assert parse_report(new) == {"translation": [100, -350, 35], "rotation": [0, 175, -700]}
    assert parse_report(bytes([3, 0b10, 0])) == {"buttons": 2}
    assert parse_report(bytes([1, 2])) == {} and parse_report(b"") == {}
    for reports in ([old_t, old_r], [new]):
        dev = SpaceMouseDevice()
        for r in reports:
            dev.feed(r)
        dev.feed(bytes([3, 0b11]))  # both buttons down: deadman held, gripper pressed
        cmd = dev.command()
        # vx=-y, vy=-x, vz=-z, wx=-ry, wy=-rx, wz=-rz over full_scale 350 (clipped to 1).
        np.testing.assert_allclose(cmd.twist, [1.0, -100 / 350, -0.1, -0.5, 0.0, 1.0])
        assert cmd.deadman and cmd.buttons == ("gripper_toggle",)
        dev.feed(bytes([3, 0b01]))  # right released, left still held: no new toggle
        cmd = dev.command()
        assert not cmd.deadman and cmd.buttons == ()


def test_web_input_parsing_rejects_malformed():
    ok = parse_input(json.dumps({"type": "input", "twist": [1, 0, 0, 0, 0, -1], "deadman": True,
                                 "buttons": ["gripper_toggle", "rm -rf"]}))
    assert ok["deadman"] and ok["buttons"] == ("gripper_toggle",)
    for bad in ("nope", "[]", '{"type": "input", "twist": [1, 2]}',
                '{"type": "input", "twist": [true, 0, 0, 0, 0, 0]}',
                '{"type": "input", "twist": ["1", 0, 0, 0, 0, 0]}', '{"type": "other"}'):
        assert parse_input(bad) is None, bad
    assert parse_input('{"type": "input", "twist": [0,0,0,0,0,0], "deadman": 1}')["deadman"] is False


def test_web_binding_beyond_loopback_requires_a_token():
    with pytest.raises(SpecError, match="requires a token"):
        WebConfig(host="0.0.0.0")
    with pytest.raises(SpecError, match="at least 16"):
        WebConfig(host="0.0.0.0", token="short")
    WebConfig(host="0.0.0.0", token="x" * 16)
    WebConfig(host="::1")  # loopback v6: no token needed


def _get(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                    timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_web_token_and_origin_enforced_on_page_and_websocket():
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    token = "s3cret-token-0123456789"
    dev = WebDevice(WebConfig(port=0, token=token, input_timeout_s=0.3))
    dev.open()
    base = f"127.0.0.1:{dev.port}"
    try:
        assert _get(f"http://{base}/") == 403
        assert _get(f"http://{base}/?token=wrong-token-0123456789") == 403
        assert _get(dev.url) == 200
        assert _get(f"http://{base}/teleop.js") == 200  # assets hold no secret
        assert _get(f"http://{base}/../web.py?token={token}") == 404
        for url, headers in ((f"ws://{base}/ws", {}),
                             (f"ws://{base}/ws?token=nope", {}),
                             (f"ws://{base}/ws?token={token}", {"Origin": "http://evil.example"})):
            with pytest.raises(InvalidStatus) as e:
                connect(url, additional_headers=headers, open_timeout=5).close()
            assert e.value.response.status_code == 403
        assert dev.refused == 5 and not dev.connected
        with connect(f"ws://{base}/ws?token={token}", origin=f"http://{base}") as ws:
            assert json.loads(ws.recv()) == {"type": "hello", "role": "controller"}
            with connect(f"ws://{base}/ws?token={token}") as viewer:
                assert json.loads(viewer.recv())["role"] == "viewer"
                viewer.send(json.dumps({"type": "input", "twist": [0, 1, 0, 0, 0, 0],
                                        "deadman": True}))
                ws.send(json.dumps({"type": "input", "twist": [1, 0, 0, 0, 0, 0],
                                    "deadman": True, "buttons": ["gripper_toggle"]}))
                cmd = _poll_until(dev, lambda c: c.deadman)
                np.testing.assert_array_equal(cmd.twist, [1, 0, 0, 0, 0, 0])  # viewer ignored
                assert cmd.buttons == ("gripper_toggle",) and dev.connected
                dev.send_status({"wrench": [1, 2, 3, 0, 0, 0]})
                assert json.loads(ws.recv(timeout=5))["wrench"] == [1, 2, 3, 0, 0, 0]
                dev.send_frame(b"\xff\xd8jpeg")
                assert ws.recv(timeout=5) == b"\xff\xd8jpeg"
                # A page that stops sending (frozen tab) reads as deadman released.
                _poll_until(dev, lambda c: not c.deadman)
        _poll_until(dev, lambda c: not dev.connected)
    finally:
        dev.close()


def test_web_port_in_use_is_a_clear_error():
    a = WebDevice(WebConfig(port=0))
    a.open()
    try:
        with pytest.raises(SpecError, match=f"cannot serve on 127.0.0.1:{a.port}"):
            WebDevice(WebConfig(port=a.port)).open()
    finally:
        a.close()


def test_web_input_flood_is_rate_limited_and_bounded():
    """A page that floods input messages: beyond max_input_hz they are dropped (counted), and the
    button events kept between two polls are bounded."""
    from websockets.sync.client import connect

    dev = WebDevice(WebConfig(port=0, max_input_hz=50.0))
    dev.open()
    try:
        with connect(f"ws://127.0.0.1:{dev.port}/ws") as ws:
            json.loads(ws.recv())
            msg = json.dumps({"type": "input", "twist": [0.5, 0, 0, 0, 0, 0], "deadman": True,
                              "buttons": ["gripper_toggle"] * 40})
            for _ in range(500):
                ws.send(msg)
            end = time.monotonic() + 10
            while time.monotonic() < end and dev.rate_limited < 400:
                time.sleep(0.05)
            assert dev.rate_limited >= 400  # ~50 of 500 sent within a second get through
            cmd = _poll_until(dev, lambda c: c.deadman)
            assert cmd.twist[0] == 0.5 and len(cmd.buttons) <= 16
    finally:
        dev.close()


def test_web_input_parser_never_raises():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                          lambda c: st.lists(c, max_size=8) | st.dictionaries(st.text(max_size=8), c, max_size=6),
                          max_leaves=20)
    inputs = st.fixed_dictionaries({"type": st.just("input")}, optional={
        "twist": values | st.lists(st.integers(-10**400, 10**400) | st.floats(), min_size=6, max_size=6),
        "deadman": values, "buttons": values, "gripper": values | st.integers(-10**400, 10**400)})

    @settings(max_examples=300, deadline=None)
    @given(msg=inputs | values, raw=st.binary(max_size=64))
    def check(msg, raw):
        for text in (json.dumps(msg), raw):
            out = parse_input(text)
            assert out is None or (out["twist"].shape == (6,) and isinstance(out["deadman"], bool))

    check()

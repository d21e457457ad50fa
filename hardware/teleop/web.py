"""Browser teleop: a page and a websocket served by one ``websockets`` server (pure Python, no ROS).

``GET /`` serves ``static/index.html`` (+ ``/teleop.js``, ``/teleop.css``); ``/ws`` is the
websocket. The page shows an on-screen joystick (drag: x/y), hold buttons (deadman, z up/down,
yaw), a gripper toggle, the live camera view and a force readout; it works with touch (phone)
and mouse (desktop) through Pointer Events.

Protocol on ``/ws`` (JSON text unless noted):

    page -> server  {"type": "input", "twist": [6] in [-1, 1], "deadman": bool,
                     "buttons": ["gripper_toggle", ...]}          ~20 Hz while the page is open
    server -> page  {"type": "hello", "role": "controller" | "viewer"}
                    {"type": "status", "wrench": [6], "gripper": 0..1, "engaged": bool, ...}
                    binary: one JPEG camera frame

Security: binds 127.0.0.1 by default. Binding any other address requires ``token`` (config
validation refuses to start without one); when a token is set, the page (``/?token=...``) and the
websocket (``/ws?token=...``) are refused (403) without it. A websocket whose ``Origin`` is not
this server's own host is refused too (another site open in the operator's browser must not
drive the robot). The first client is the controller; later ones only watch. Input older than
``input_timeout_s`` (a frozen tab, a dropped network) reads as deadman released.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from rosmind.errors import SpecError
from rosmind.hardware.teleop.devices import Device
from rosmind.registry import DEVICES
from rosmind.teleop import GRIPPER_BUTTONS, TeleopCommand

STATIC = Path(__file__).resolve().parent / "static"
_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
          "/index.html": ("index.html", "text/html; charset=utf-8"),
          "/teleop.js": ("teleop.js", "text/javascript; charset=utf-8"),
          "/teleop.css": ("teleop.css", "text/css; charset=utf-8")}
_PROTECTED = {"/", "/index.html", "/ws"}  # the JS/CSS assets hold no secrets


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8765  # 0 = any free port (``WebDevice.port`` after open)
    token: str = ""  # required unless host is loopback; e.g. python -c "import secrets; print(secrets.token_urlsafe())"
    input_timeout_s: float = 0.5
    max_clients: int = 4
    max_input_hz: float = 200.0  # input messages accepted per second from the controlling page; more are dropped

    def __post_init__(self):
        if not 0 <= self.port <= 65535:
            raise SpecError(f"WebConfig.port: must be in 0..65535, got {self.port}")
        if not is_loopback(self.host) and not self.token:
            raise SpecError(f"WebConfig: binding the teleop page to {self.host!r} (not loopback) "
                            "requires a token; set token (>= 16 characters) or host 127.0.0.1")
        if self.token and len(self.token) < 16:
            raise SpecError("WebConfig.token: must be at least 16 characters")
        if not (math.isfinite(self.input_timeout_s) and self.input_timeout_s > 0):
            raise SpecError(f"WebConfig.input_timeout_s: must be > 0, got {self.input_timeout_s!r}")
        if self.max_clients < 1:
            raise SpecError("WebConfig.max_clients: must be >= 1")
        if not self.max_input_hz > 0:
            raise SpecError(f"WebConfig.max_input_hz: must be > 0, got {self.max_input_hz!r}")


MAX_BUTTONS = 16  # button events kept per message and between two polls


def parse_input(text: str | bytes) -> dict | None:
    """A page's input message -> ``{"twist", "deadman", "buttons", "gripper"}``; None if malformed."""
    try:
        m = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(m, dict) or m.get("type") != "input":
        return None
    twist = m.get("twist", [0.0] * 6)
    if (not isinstance(twist, list) or len(twist) != 6
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in twist)):
        return None
    buttons = m.get("buttons", [])
    if not isinstance(buttons, list):
        return None
    gripper = m.get("gripper")
    if gripper is not None and not isinstance(gripper, int | float):
        return None
    try:  # a JSON integer may be too large for a float
        twist_a = np.asarray(twist, dtype=np.float64)
        grip = None if gripper is None else float(gripper)
    except OverflowError:
        return None
    return {"twist": twist_a, "deadman": m.get("deadman") is True,
            "buttons": tuple(b for b in buttons[:MAX_BUTTONS] if isinstance(b, str) and b in GRIPPER_BUTTONS),
            "gripper": grip}


@DEVICES.register("web", config=WebConfig)
class WebDevice(Device):
    name = "web"

    def __init__(self, cfg: WebConfig | None = None):
        super().__init__()
        self.cfg = cfg or WebConfig()
        self.port: int | None = None
        self._lock = threading.Lock()
        self._clients: list = []  # websocket connections, controller first
        self._sending: set = set()  # connections with a frame still in flight
        self._last: dict | None = None
        self._last_at = -math.inf
        self._buttons: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.refused = 0  # requests refused for a missing/wrong token or a foreign origin
        self.rate_limited = 0  # input messages dropped above max_input_hz

    @property
    def url(self) -> str:
        host = self.cfg.host if ":" not in self.cfg.host else f"[{self.cfg.host}]"
        q = f"?token={self.cfg.token}" if self.cfg.token else ""
        return f"http://{host}:{self.port}/{q}"

    def open(self) -> None:
        self._thread = threading.Thread(target=self._serve_thread, name="web_teleop", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)
        if self._error is not None or self.port is None:
            self._thread.join(timeout=2.0)
            raise SpecError(f"web teleop: cannot serve on {self.cfg.host}:{self.cfg.port}: "
                            f"{self._error or 'server did not start'}")

    def close(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=5.0)
        self._thread = self._loop = None
        self._connected = False

    def _serve_thread(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:  # noqa: BLE001 - reported to open() / the caller
            self._error = e
            self._ready.set()

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handler, self.cfg.host, self.cfg.port, max_size=65536,
                         process_request=self._process_request) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    def _token_ok(self, query: str) -> bool:
        if not self.cfg.token:
            return True
        given = parse_qs(query).get("token", [""])[0]
        return hmac.compare_digest(given.encode(), self.cfg.token.encode())

    def _process_request(self, connection, request):
        url = urlsplit(request.path)
        if url.path in _PROTECTED and not self._token_ok(url.query):
            self.refused += 1
            return connection.respond(403, "forbidden: missing or wrong token\n")
        if url.path == "/ws":
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc != request.headers.get("Host"):
                self.refused += 1
                return connection.respond(403, "forbidden: cross-origin websocket\n")
            return None  # go on with the websocket handshake
        if url.path not in _FILES:
            return connection.respond(404, "not found\n")
        name, ctype = _FILES[url.path]
        resp = connection.respond(200, (STATIC / name).read_text())
        del resp.headers["Content-Type"]
        resp.headers["Content-Type"] = ctype
        resp.headers["Cache-Control"] = "no-store"
        return resp

    async def _handler(self, ws) -> None:
        with self._lock:
            if len(self._clients) >= self.cfg.max_clients:
                await ws.close(1013, "too many clients")
                return
            self._clients.append(ws)
            controller = self._clients[0] is ws
            self._connected = True
        try:
            await ws.send(json.dumps({"type": "hello",
                                      "role": "controller" if controller else "viewer"}))
            allowance, last = self.cfg.max_input_hz, time.monotonic()  # token bucket: max_input_hz, bursts of 1 s
            async for message in ws:
                if not (self._clients and self._clients[0] is ws):
                    continue  # viewers don't drive
                now = time.monotonic()
                rate = self.cfg.max_input_hz
                allowance = min(rate, allowance + (now - last) * rate)
                last = now
                if allowance < 1.0:
                    self.rate_limited += 1
                    continue
                allowance -= 1.0
                m = parse_input(message)
                if m is None:
                    continue
                with self._lock:
                    self._last, self._last_at = m, now
                    self._buttons = (self._buttons + list(m["buttons"]))[-MAX_BUTTONS:]
        except Exception:  # noqa: BLE001 - a broken connection ends like a closed one
            pass
        finally:
            with self._lock:
                was_controller = bool(self._clients) and self._clients[0] is ws
                self._clients.remove(ws)
                self._sending.discard(ws)
                if was_controller:
                    self._last, self._last_at = None, -math.inf
                    self._buttons.clear()
                self._connected = bool(self._clients)
            if was_controller and self._clients:  # promote the next one
                try:
                    await self._clients[0].send(json.dumps({"type": "hello", "role": "controller"}))
                except Exception:  # noqa: BLE001
                    pass

    def poll(self) -> TeleopCommand:
        with self._lock:
            buttons, self._buttons = tuple(self._buttons), []
            m = self._last
            fresh = m is not None and time.monotonic() - self._last_at <= self.cfg.input_timeout_s
        if not fresh:
            return TeleopCommand(buttons=buttons)
        return TeleopCommand(twist=m["twist"], gripper=m["gripper"], deadman=m["deadman"],
                             buttons=buttons)

    def _broadcast(self, data: str | bytes, drop_if_busy: bool) -> None:
        loop = self._loop
        if loop is None:
            return

        async def send_all():
            for ws in list(self._clients):
                if drop_if_busy and ws in self._sending:
                    continue  # a slow client skips frames instead of queueing them
                self._sending.add(ws)
                try:
                    await ws.send(data)
                except Exception:  # noqa: BLE001 - the handler cleans the client up
                    pass
                finally:
                    self._sending.discard(ws)

        try:
            asyncio.run_coroutine_threadsafe(send_all(), loop)
        except RuntimeError:  # loop closed during shutdown
            pass

    def send_frame(self, jpeg: bytes) -> None:
        """Show one JPEG camera frame on every page (a slow page skips frames)."""
        if self._clients:
            self._broadcast(bytes(jpeg), drop_if_busy=True)

    def send_status(self, status: dict) -> None:
        """Show ``status`` (``wrench`` [6], ``gripper``, ``engaged``, ...) on every page."""
        if self._clients:
            self._broadcast(json.dumps({"type": "status", **status}), drop_if_busy=False)

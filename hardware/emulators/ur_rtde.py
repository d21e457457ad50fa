"""A Universal Robots controller's RTDE interface (TCP port 30004), emulated for the state side:
the handshake and data streaming of UR's RTDE guide, for testing the UR driver's reading path
and dry runs with no robot.

    python -m rosmind.hardware.emulators.ur_rtde --host 127.0.0.2 [--motion sine]

Protocol (big-endian; each package ``uint16 size, uint8 type, payload``): ``V`` request protocol
version (accepts 2), ``v`` controller version (5.15.0), ``O`` output setup (``double`` frequency,
comma-separated variable names -> recipe id and their types, ``NOT_FOUND`` for unknown names),
``I`` input setup (answered ``IN_USE``-free types for registers), ``S`` start / ``P`` pause, then
``U`` data packages (recipe id + values) at the asked frequency, ``M`` text messages.

The emulated arm holds a pose, or with ``--motion sine`` moves each joint on a slow sine, so a
reader can check it sees fresh, consistent states. URScript programs and the control registers
(what ur_rtde's RTDEControlInterface uploads and drives) are not emulated.
"""

from __future__ import annotations

import argparse
import math
import socket
import struct
import sys
import threading
import time

RTDE_PORT = 30004
TYPES = {"DOUBLE": ">d", "VECTOR6D": ">6d", "VECTOR3D": ">3d", "INT32": ">i", "UINT32": ">I", "UINT64": ">Q",
         "VECTOR6INT32": ">6i", "BOOL": ">?", "UINT8": ">B"}
# The state variables this emulator serves (names and types from UR's RTDE guide).
VARIABLES = {
    "timestamp": "DOUBLE", "target_q": "VECTOR6D", "target_qd": "VECTOR6D", "actual_q": "VECTOR6D",
    "actual_qd": "VECTOR6D", "actual_current": "VECTOR6D", "actual_TCP_pose": "VECTOR6D",
    "actual_TCP_force": "VECTOR6D", "robot_mode": "INT32", "safety_mode": "INT32", "runtime_state": "UINT32",
    "speed_scaling": "DOUBLE", "joint_temperatures": "VECTOR6D", "actual_execution_time": "DOUBLE",
    "safety_status_bits": "UINT32", "robot_status_bits": "UINT32",
}
ROBOT_MODE_RUNNING, SAFETY_MODE_NORMAL = 7, 1
HOME = (0.0, -1.5708, 1.5708, -1.5708, -1.5708, 0.0)


def package(kind: str, payload: bytes = b"") -> bytes:
    return struct.pack(">HB", 3 + len(payload), ord(kind)) + payload


class Session:
    def __init__(self, conn: socket.socket, motion: str, safety_mode: int = SAFETY_MODE_NORMAL):
        self.conn, self.motion, self.safety_mode = conn, motion, safety_mode
        self.recipes: dict[int, tuple[float, list[str]]] = {}
        self.running = False
        self.t0 = time.monotonic()

    def state(self, name: str, t: float):
        w = 0.2 * math.sin(2 * math.pi * 0.25 * t) if self.motion == "sine" else 0.0
        dw = 0.2 * 2 * math.pi * 0.25 * math.cos(2 * math.pi * 0.25 * t) if self.motion == "sine" else 0.0
        q = [h + w for h in HOME]
        return {"timestamp": t, "target_q": q, "actual_q": q, "target_qd": [dw] * 6, "actual_qd": [dw] * 6,
                "actual_current": [0.0] * 6, "actual_TCP_pose": [0.3, 0.1, 0.4, 0.0, 3.14, 0.0],
                "actual_TCP_force": [0.0] * 6, "robot_mode": ROBOT_MODE_RUNNING, "safety_mode": self.safety_mode,
                "runtime_state": 1, "speed_scaling": 1.0, "joint_temperatures": [30.0] * 6,
                "actual_execution_time": 0.1, "safety_status_bits": 1, "robot_status_bits": 3}[name]

    def handle(self, kind: int, payload: bytes) -> None:
        c = chr(kind)
        if c == "V":
            (version,) = struct.unpack(">H", payload[:2])
            self.conn.sendall(package("V", bytes([1 if version in (1, 2) else 0])))
        elif c == "v":
            self.conn.sendall(package("v", struct.pack(">IIII", 5, 15, 0, 0)))
        elif c == "O":
            freq = struct.unpack(">d", payload[:8])[0]
            names = [n for n in payload[8:].decode().split(",") if n]
            rid = len(self.recipes) + 1
            types = [VARIABLES.get(n, "NOT_FOUND") for n in names]
            if "NOT_FOUND" not in types:
                self.recipes[rid] = (freq, names)
            self.conn.sendall(package("O", bytes([rid]) + ",".join(types).encode()))
        elif c == "I":
            names = [n for n in payload.decode().split(",") if n]
            types = ["INT32" if "int" in n else "DOUBLE" if "double" in n else "NOT_FOUND" for n in names]
            self.conn.sendall(package("I", bytes([len(self.recipes) + 1]) + ",".join(types).encode()))
        elif c == "S":
            self.running = True
            self.conn.sendall(package("S", b"\x01"))
        elif c == "P":
            self.running = False
            self.conn.sendall(package("P", b"\x01"))

    def stream(self, stop: threading.Event) -> None:
        next_t = time.monotonic()
        while not stop.is_set():
            if self.running and self.recipes:
                freq = max(f for f, _ in self.recipes.values())
                t = time.monotonic() - self.t0
                for rid, (_f, names) in self.recipes.items():
                    body = bytes([rid]) + b"".join(struct.pack(TYPES[VARIABLES[n]], *(
                        v if isinstance(v := self.state(n, t), list) else [v])) for n in names)
                    try:
                        self.conn.sendall(package("U", body))
                    except OSError:
                        return
                next_t += 1.0 / freq
                time.sleep(max(0.0, next_t - time.monotonic()))
            else:
                next_t = time.monotonic()
                time.sleep(0.005)


def serve(host: str, motion: str, safety_mode: int = SAFETY_MODE_NORMAL) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, RTDE_PORT))
    srv.listen(4)
    print(f"UR RTDE emulator on {host}:{RTDE_PORT}", flush=True)
    while True:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = Session(conn, motion, safety_mode)
        stop = threading.Event()
        threading.Thread(target=s.stream, args=(stop,), daemon=True).start()
        buf = b""
        try:
            while True:
                data = conn.recv(4096)
                if not data:
                    break
                buf += data
                while len(buf) >= 3:
                    size, kind = struct.unpack(">HB", buf[:3])
                    if len(buf) < size:
                        break
                    s.handle(kind, buf[3:size])
                    buf = buf[size:]
        except OSError:
            pass
        stop.set()
        conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rosmind.hardware.emulators.ur_rtde", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="any loopback address (127.x.y.z) keeps tests apart")
    ap.add_argument("--motion", choices=("hold", "sine"), default="hold")
    ap.add_argument("--safety-mode", type=int, default=SAFETY_MODE_NORMAL, help="3 = protective stop, 7 = e-stop")
    args = ap.parse_args(argv)
    try:
        serve(args.host, args.motion, args.safety_mode)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""ATI Net F/T (and the other ATI F/T boxes speaking RDT) over UDP: the Raw Data Transfer
protocol of ATI's Net F/T manual.

    ft = NetFT("192.168.1.1", counts_per_force=1e6, counts_per_torque=1e6)
    ft.start()                      # ask for a continuous stream (one record per sensor sample)
    wrench, age_s = ft.latest()     # [fx fy fz tx ty tz] N and N m, seconds since it arrived
    ft.tare()                       # the box's software bias: the current load reads zero
    ft.stop()

Request (8 bytes, big-endian): ``uint16 0x1234`` header, ``uint16`` command (``0x0000`` stop,
``0x0002`` start real-time streaming, ``0x0042`` set software bias), ``uint32`` sample count
(0 = until stopped). Record (36 bytes, big-endian): ``uint32 rdt_sequence``, ``uint32
ft_sequence``, ``uint32 status`` (0 = healthy), six ``int32`` counts: Fx Fy Fz Tx Ty Tz.
Counts per unit come from the box's configuration page (``netftapi2.xml``: cfgcpf, cfgcpt).

A reader thread keeps the newest record; gaps in ``rdt_sequence`` count lost packets; a nonzero
status word is kept and reported (``status``), and ``latest()`` raises ``HardwareError`` when
nothing arrived for ``timeout_s``.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import numpy as np

from rosmind.errors import HardwareError

RDT_PORT = 49152
HEADER = 0x1234
CMD_STOP, CMD_START, CMD_BIAS = 0x0000, 0x0002, 0x0042
REQUEST = struct.Struct(">HHI")
RECORD = struct.Struct(">III6i")


def request(command: int, samples: int = 0) -> bytes:
    return REQUEST.pack(HEADER, command, samples)


class NetFT:
    def __init__(self, address: str, port: int = RDT_PORT, counts_per_force: float = 1e6,
                 counts_per_torque: float = 1e6, timeout_s: float = 0.1):
        if not (counts_per_force > 0 and counts_per_torque > 0):
            raise HardwareError(f"Net F/T {address}: counts per force / torque must be > 0")
        self.address, self.port, self.timeout_s = address, int(port), timeout_s
        self.scale = np.array([1 / counts_per_force] * 3 + [1 / counts_per_torque] * 3)
        self.sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._latest: np.ndarray | None = None
        self._at = 0.0
        self.status = 0
        self.received = self.lost = 0
        self._last_seq: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def device(self) -> str:
        return f"Net F/T {self.address}:{self.port}"

    def start(self) -> None:
        try:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.connect((self.address, self.port))
            self.sock.settimeout(0.05)
            self.sock.send(request(CMD_START))
        except OSError as e:
            raise HardwareError(f"{self.device}: cannot start streaming ({e}); check the address and the "
                                "network (the box answers ping)") from None
        self._stop.clear()
        self._thread = threading.Thread(target=self._read, name="netft", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(RECORD.size * 8)
            except TimeoutError:
                continue
            except OSError:  # ICMP port unreachable (nobody there), or closed
                time.sleep(0.05)
                continue
            for off in range(0, len(data) - RECORD.size + 1, RECORD.size):
                rdt, _ft, status, *counts = RECORD.unpack_from(data, off)
                with self._lock:
                    if self._last_seq is not None and rdt > self._last_seq + 1:
                        self.lost += rdt - self._last_seq - 1
                    self._last_seq = rdt
                    self.received += 1
                    self.status = status
                    self._latest = np.asarray(counts, dtype=np.float64) * self.scale
                    self._at = time.monotonic()

    def latest(self) -> tuple[np.ndarray, float]:
        """(wrench [6], seconds since it arrived); ``HardwareError`` when stale or never seen."""
        with self._lock:
            latest, at, status = self._latest, self._at, self.status
        if latest is None:
            raise HardwareError(f"{self.device}: no data yet; check the address, the box's RDT setting "
                                "and that UDP port 49152 is not firewalled")
        age = time.monotonic() - at
        if age > self.timeout_s:
            raise HardwareError(f"{self.device}: no data for {age:.2f} s (cable, power, network)")
        if status:
            raise HardwareError(f"{self.device}: status word 0x{status:08x} (saturation or a gauge fault: "
                                "see the box's web page)")
        return latest.copy(), age

    def tare(self) -> None:
        """The box's software bias: the load now reads zero from here on."""
        if self.sock is None:
            raise HardwareError(f"{self.device}: tare before start()")
        self.sock.send(request(CMD_BIAS))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if self.sock is not None:
            try:
                self.sock.send(request(CMD_STOP))
            except OSError:
                pass
            self.sock.close()
            self.sock = None

"""An ATI Net F/T box on loopback UDP, speaking RDT (``rosmind.hardware.sensors.netft`` has the
packet formats), for testing the driver and the F/T node with no sensor:

    with NetFTEmulator(rate_hz=500) as box:
        box.port                        # 127.0.0.1:<port>
        box.load = [0, 0, 12.5, 0, 0, 0]  # the wrench on the sensor (N, N m)
        box.mute(True)                  # stops sending (unplugged)
        box.status = 0x80000000         # a fault bit in every record

Streams records to whoever sent "start" (until "stop"), ``counts_per_force`` /
``counts_per_torque`` counts per unit, Gaussian noise, software bias on command.
"""

from __future__ import annotations

import socket
import threading

import numpy as np

from rosmind.hardware.sensors.netft import CMD_BIAS, CMD_START, CMD_STOP, HEADER, RECORD, REQUEST


class NetFTEmulator:
    def __init__(self, rate_hz: float = 500.0, counts_per_force: float = 1e6, counts_per_torque: float = 1e6,
                 noise: float = 0.02, seed: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.001)
        self.port = self.sock.getsockname()[1]
        self.cpf, self.cpt, self.noise = counts_per_force, counts_per_torque, noise
        self.rng = np.random.default_rng(seed)
        self.load = np.zeros(6)
        self.bias = np.zeros(6)
        self.status = 0
        self.muted = False
        self.peer = None
        self.seq = 0
        self.commands: list[int] = []
        self._dt = 1.0 / rate_hz
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def mute(self, muted: bool = True) -> None:
        self.muted = muted

    def _run(self) -> None:
        scale = np.array([self.cpf] * 3 + [self.cpt] * 3)
        while not self._stop.wait(self._dt):
            try:
                while True:
                    data, addr = self.sock.recvfrom(64)
                    if len(data) != REQUEST.size:
                        continue
                    header, cmd, _n = REQUEST.unpack(data)
                    if header != HEADER:
                        continue
                    self.commands.append(cmd)
                    if cmd == CMD_START:
                        self.peer = addr
                    elif cmd == CMD_STOP:
                        self.peer = None
                    elif cmd == CMD_BIAS:
                        self.bias = np.asarray(self.load, dtype=np.float64).copy()
            except (TimeoutError, BlockingIOError):
                pass
            except OSError:
                return
            if self.peer is None or self.muted:
                continue
            self.seq += 1
            w = np.asarray(self.load, dtype=np.float64) - self.bias + self.noise * self.rng.standard_normal(6)
            counts = np.clip(np.round(w * scale), -2**31, 2**31 - 1).astype(np.int64)
            try:
                self.sock.sendto(RECORD.pack(self.seq, self.seq, self.status, *counts.tolist()), self.peer)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

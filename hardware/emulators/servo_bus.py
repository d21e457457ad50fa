"""A servo bus on a pseudo-terminal that speaks the servos' real wire protocols, for testing
drivers (and dry-running launch files) with no arm plugged in.

    with ServoBusEmulator("feetech", {1: "sts3215", 2: "sts3215"}) as bus:
        bus.port                       # "/dev/pts/N": open it like /dev/ttyACM0
        bus.servo(1).position          # ticks, float
        bus.move_by_hand(1, 1800)      # what a hand does to a servo with torque off
        bus.drop_next(1)               # the next instruction packet is lost (no reply)
        bus.corrupt_next(1)            # the next status packet has a bad checksum
        bus.silence(2)                 # servo 2 stops answering

Protocols (from the vendors' published packet formats):

- ``feetech``: Feetech SCS/STS (SO-100/SO-101 arms), Dynamixel protocol 1.0's framing:
  ``FF FF id len inst params.. chk`` with ``chk = ~(id + len + inst + params) & 0xFF``;
  status ``FF FF id len err data.. chk``. Little-endian registers (STS).
- ``dynamixel``: Dynamixel protocol 2.0 (X series, Koch arms): ``FF FF FD 00 id len_l len_h
  inst params.. crc_l crc_h``, CRC-16 (poly 0x8005) over the whole packet, byte stuffing
  (``FF FF FD`` in the payload gets an extra ``FD``); status instruction ``0x55``.

Both: PING, READ, WRITE, REG_WRITE + ACTION, SYNC_READ (each servo answers in turn),
SYNC_WRITE (no answer), broadcast id 0xFE. A servo with torque on moves its present position
toward the goal at ``max_speed`` ticks/s; with torque off it stays where it is put
(``move_by_hand``). The emulator answers from its own thread; replies go out as soon as a
packet is complete (a real bus adds ~0.1 ms per byte at 1 Mbit/s).
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty

from rosmind.hardware.arms.servo_tables import PROTOCOLS, SERVO_MODELS, ServoModel

BROADCAST = 0xFE
PING, READ, WRITE, REG_WRITE, ACTION, REBOOT, SYNC_READ, SYNC_WRITE = 0x01, 0x02, 0x03, 0x04, 0x05, 0x08, 0x82, 0x83
STATUS_2 = 0x55  # protocol 2.0 status instruction
# Protocol 2.0 status error field: instruction error, length error, access error
ERR2_INSTRUCTION, ERR2_LENGTH, ERR2_ACCESS = 0x02, 0x05, 0x07



def feetech_checksum(body: bytes) -> int:
    """``body`` = id, length, instruction/error and parameters."""
    return ~sum(body) & 0xFF


def dynamixel_crc(data: bytes) -> int:
    """CRC-16, polynomial 0x8005, initial value 0, MSB first (protocol 2.0)."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def stuff(payload: bytes) -> bytes:
    """Protocol 2.0 byte stuffing: FF FF FD -> FF FF FD FD."""
    out = bytearray()
    for b in payload:
        out.append(b)
        if b == 0xFD and out[-3:] == b"\xff\xff\xfd":
            out.append(0xFD)
    return bytes(out)


def unstuff(payload: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(payload):
        out.append(payload[i])
        if payload[i] == 0xFD and out[-3:] == b"\xff\xff\xfd" and i + 1 < len(payload) and payload[i + 1] == 0xFD:
            i += 1  # drop the stuffed byte
        i += 1
    return bytes(out)


def feetech_packet(servo_id: int, inst_or_err: int, params: bytes = b"") -> bytes:
    body = bytes([servo_id, len(params) + 2, inst_or_err]) + params
    return b"\xff\xff" + body + bytes([feetech_checksum(body)])


def dynamixel_packet(servo_id: int, inst: int, params: bytes = b"") -> bytes:
    payload = stuff(params)
    n = len(payload) + 3  # instruction + parameters + CRC
    head = b"\xff\xff\xfd\x00" + bytes([servo_id, n & 0xFF, n >> 8, inst]) + payload
    crc = dynamixel_crc(head)
    return head + bytes([crc & 0xFF, crc >> 8])


class EmulatedServo:
    """One servo's control table and motion."""

    def __init__(self, servo_id: int, model: ServoModel, position: float | None = None):
        self.id, self.model = servo_id, model
        self.table = bytearray(model.table_size)
        self.put("model_number", model.model_number)
        self.put("id", servo_id)
        self.put("max_position", model.resolution - 1)
        self.position = float(model.resolution // 2 if position is None else position)
        self.put("goal_position", int(self.position))
        self.silent = False
        self.error = 0  # status packet error bits
        self.pending: tuple[int, bytes] | None = None  # REG_WRITE, applied by ACTION
        self._speed = 0.0  # ticks/s, signed
        self._sync_registers()

    def get(self, name: str) -> int:
        addr, size = self.model.reg(name)
        return int.from_bytes(self.table[addr:addr + size], "little")

    def put(self, name: str, value: int) -> None:
        addr, size = self.model.reg(name)
        self.table[addr:addr + size] = (int(value) & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    @property
    def torque(self) -> bool:
        return bool(self.get("torque_enable"))

    @property
    def goal(self) -> int:
        return self.get("goal_position")

    def write(self, addr: int, data: bytes) -> bool:
        if addr + len(data) > len(self.table):
            return False
        self.table[addr:addr + len(data)] = data
        return True

    def read(self, addr: int, length: int) -> bytes | None:
        if addr + length > len(self.table):
            return None
        return bytes(self.table[addr:addr + length])

    def advance(self, dt: float) -> None:
        moving = False
        if self.torque:
            err = self.goal - self.position
            step = self.model.max_speed * dt
            moving = abs(err) > 0.5
            self.position = float(self.goal) if abs(err) <= step else self.position + step * (1 if err > 0 else -1)
            self._speed = 0.0 if not moving else self.model.max_speed * (1 if err > 0 else -1)
        else:
            self._speed = 0.0
        self.put("moving", int(moving))
        self._sync_registers()

    def _sync_registers(self) -> None:
        self.put("present_position", int(round(self.position)) % self.model.resolution
                 if self.model.protocol == "feetech" else int(round(self.position)))
        speed = int(round(self._speed))
        if self.model.protocol == "feetech":  # sign-magnitude, bit 15
            self.put("present_speed", abs(speed) | (0x8000 if speed < 0 else 0))
        else:
            self.put("present_velocity", speed)


class ServoBusEmulator:
    """Servos ``{id: model name}`` behind one pseudo-terminal (``port``)."""

    def __init__(self, protocol: str, servos: dict[int, str], positions: dict[int, float] | None = None,
                 rate_hz: float = 1000.0):
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown servo protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
        self.protocol = protocol
        self.servos: dict[int, EmulatedServo] = {}
        for sid, name in servos.items():
            model = SERVO_MODELS.get(name)
            if model is None or model.protocol != protocol:
                valid = [m.name for m in SERVO_MODELS.values() if m.protocol == protocol]
                raise ValueError(f"servo model {name!r} does not speak {protocol}; valid: {valid}")
            self.servos[sid] = EmulatedServo(sid, model, (positions or {}).get(sid))
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._lock = threading.Lock()
        self._buf = bytearray()
        self._drop = self._corrupt = 0
        self.received = self.replied = 0  # instruction packets, status packets
        self.log: list[tuple[int, int]] = []  # (id, instruction) of every packet received
        self._dt = 1.0 / rate_hz
        self._idle_loops = 0  # loop passes that found nothing to read (settle())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"servo-bus-{protocol}", daemon=True)
        self._thread.start()

    # -- the test's hands --------------------------------------------------------------

    def servo(self, sid: int) -> EmulatedServo:
        return self.servos[sid]

    def move_by_hand(self, sid: int, ticks: float) -> None:
        """Put a servo's shaft at ``ticks`` (a person moving a torque-off arm)."""
        with self._lock:
            self.servos[sid].position = float(ticks)
            self.servos[sid]._sync_registers()

    def drop_next(self, n: int = 1) -> None:
        """Lose the next ``n`` instruction packets (no servo sees them)."""
        with self._lock:
            self._drop += n

    def corrupt_next(self, n: int = 1) -> None:
        """Send the next ``n`` status packets with a wrong checksum / CRC."""
        with self._lock:
            self._corrupt += n

    def silence(self, sid: int, silent: bool = True) -> None:
        """A servo that stops answering (unplugged, brown-out)."""
        with self._lock:
            self.servos[sid].silent = silent

    def set_error(self, sid: int, bits: int) -> None:
        """Error bits a servo reports in every status packet (overload, overheat, ...)."""
        with self._lock:
            self.servos[sid].error = bits

    def settle(self, timeout: float = 2.0) -> None:
        """Return once every byte written to the port so far has been handled (sync writes have
        no reply to wait for)."""
        start = self._idle_loops
        deadline = time.monotonic() + timeout
        while self._idle_loops < start + 2 and time.monotonic() < deadline:
            time.sleep(self._dt)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the bus ---------------------------------------------------------------------------

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], self._dt)
                data = os.read(self._master, 4096) if ready else b""
            except OSError:
                return
            now = time.monotonic()
            if not data:
                self._idle_loops += 1
            with self._lock:
                for s in self.servos.values():
                    s.advance(now - last)
                last = now
                if data:
                    self._buf += data
                    out = self._parse()
                else:
                    out = b""
            if out:
                try:
                    os.write(self._master, out)
                except OSError:
                    return

    def _parse(self) -> bytes:
        out = bytearray()
        while True:
            pkt = self._next_feetech() if self.protocol == "feetech" else self._next_dynamixel()
            if pkt is None:
                return bytes(out)
            if pkt is False:
                continue  # a corrupt instruction packet: servos ignore it
            sid, inst, params = pkt
            self.log.append((sid, inst))
            self.received += 1
            if self._drop:
                self._drop -= 1
                continue
            out += self._execute(sid, inst, params)

    def _next_feetech(self):
        buf = self._buf
        start = buf.find(b"\xff\xff")
        if start < 0:
            del buf[:max(0, len(buf) - 1)]
            return None
        del buf[:start]
        if len(buf) < 4:
            return None
        n = buf[3]
        if len(buf) < 4 + n:
            return None
        body, chk = bytes(buf[2:3 + n]), buf[3 + n]
        del buf[:4 + n]
        if n < 2 or feetech_checksum(body) != chk:
            return False
        return body[0], body[2], body[3:]

    def _next_dynamixel(self):
        buf = self._buf
        start = buf.find(b"\xff\xff\xfd\x00")
        if start < 0:
            del buf[:max(0, len(buf) - 3)]
            return None
        del buf[:start]
        if len(buf) < 7:
            return None
        n = buf[5] | buf[6] << 8
        if len(buf) < 7 + n:
            return None
        pkt = bytes(buf[:7 + n])
        del buf[:7 + n]
        if n < 3 or dynamixel_crc(pkt[:-2]) != (pkt[-2] | pkt[-1] << 8):
            return False
        return pkt[4], pkt[7], unstuff(pkt[8:-2])

    def _status(self, servo: EmulatedServo, params: bytes = b"", error: int | None = None) -> bytes:
        err = servo.error if error is None else error
        if self.protocol == "feetech":
            pkt = bytearray(feetech_packet(servo.id, err, params))
        else:
            pkt = bytearray(dynamixel_packet(servo.id, STATUS_2, bytes([err]) + params))
        if self._corrupt:
            self._corrupt -= 1
            pkt[-1] ^= 0x5A
        self.replied += 1
        return bytes(pkt)

    def _addr_len(self, params: bytes) -> tuple[int, int, bytes]:
        """(address, length, rest) of a READ/SYNC_* parameter block."""
        if self.protocol == "feetech":
            return params[0], params[1], params[2:]
        return params[0] | params[1] << 8, params[2] | params[3] << 8, params[4:]

    def _execute(self, sid: int, inst: int, params: bytes) -> bytes:
        targets = list(self.servos.values()) if sid == BROADCAST else (
            [self.servos[sid]] if sid in self.servos else [])
        targets = [s for s in targets if not s.silent]
        reply = sid != BROADCAST
        out = bytearray()
        dyn = self.protocol == "dynamixel"
        if inst == PING:
            for s in targets:
                body = (s.model.model_number.to_bytes(2, "little") + bytes([s.get("firmware_version") or 52])
                        if dyn else b"")
                out += self._status(s, body)  # broadcast pings are answered by every servo
            return bytes(out)
        if inst == READ and reply:
            for s in targets:
                if len(params) < (4 if dyn else 2):
                    out += self._status(s, error=ERR2_LENGTH if dyn else 0x08)
                    continue
                addr, length, _ = self._addr_len(params)
                data = s.read(addr, length)
                out += self._status(s, data) if data is not None else self._status(
                    s, error=ERR2_ACCESS if dyn else 0x08)
            return bytes(out)
        if inst in (WRITE, REG_WRITE):
            if len(params) < (3 if dyn else 2):
                return bytes(out)
            addr = params[0] | params[1] << 8 if dyn else params[0]
            data = params[2:] if dyn else params[1:]
            for s in targets:
                if inst == WRITE:
                    ok = s.write(addr, data)
                else:
                    s.pending, ok = (addr, data), True
                if reply:
                    out += self._status(s) if ok else self._status(s, error=ERR2_ACCESS if dyn else 0x08)
            return bytes(out)
        if inst == ACTION:
            for s in targets:
                if s.pending is not None:
                    s.write(*s.pending)
                    s.pending = None
                if reply:
                    out += self._status(s)
            return bytes(out)
        if inst == SYNC_WRITE and sid == BROADCAST:
            addr, length, rest = self._addr_len(params)
            for i in range(0, len(rest) - length, length + 1):
                s = self.servos.get(rest[i])
                if s is not None and not s.silent:
                    s.write(addr, rest[i + 1:i + 1 + length])
            return bytes(out)
        if inst == SYNC_READ and sid == BROADCAST:
            addr, length, ids = self._addr_len(params)
            for i in ids:  # each servo answers in the order asked
                s = self.servos.get(i)
                if s is None or s.silent:
                    continue
                data = s.read(addr, length)
                if data is not None:
                    out += self._status(s, data)
            return bytes(out)
        if inst == REBOOT and dyn:
            for s in targets:
                s.error = 0
                s.put("torque_enable", 0)
                if reply:
                    out += self._status(s)
            return bytes(out)
        for s in targets if reply else []:  # an instruction this servo does not know
            out += self._status(s, error=ERR2_INSTRUCTION if dyn else 0x40)
        return bytes(out)


def main(argv: list[str] | None = None) -> int:
    """Serve an emulated arm's bus until Ctrl-C: ``--robot so100`` takes the spec's bus layout."""
    import argparse
    import signal

    from rosmind.spec import load_spec

    ap = argparse.ArgumentParser(prog="python -m rosmind.hardware.emulators.servo_bus", description=main.__doc__)
    ap.add_argument("--robot", default="so100", help="robot spec with an extra.bus section (so100, koch)")
    args = ap.parse_args(argv)
    bus = load_spec(args.robot).extra.get("bus")
    if not bus:
        print(f"robot {args.robot!r} has no servo bus (extra.bus in its spec)", flush=True)
        return 2
    emu = ServoBusEmulator(bus["protocol"], dict(zip(bus["ids"], bus["models"], strict=True)))
    print(f"{args.robot} {bus['protocol']} bus emulator on {emu.port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    emu.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

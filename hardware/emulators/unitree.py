"""A Unitree Go2's low-level DDS interface, emulated: ``rt/lowstate`` out at 500 Hz, ``rt/lowcmd``
in, with the vendor's IDL types (unitree-sdk2) and CRC, over the robot's physics (rosmind's
MuJoCo Go2, ``sim/mujoco/models.py``), for testing the driver and dry-running the quadruped
graph with no robot:

    python -m rosmind.hardware.emulators.unitree --interface lo --domain 7 [--hang]

- Each motor applies what the real one does with the newest valid lowcmd: ``tau + kp (q* - q)
  + kd (dq* - dq)``, clipped to the spec's effort; ``q* = PosStopF`` means no position term.
  A lowcmd whose CRC is wrong, or that is not in the low-level mode (``level_flag`` 0xFF), is
  ignored and counted. Without a valid lowcmd for ``cmd_timeout_s`` the motors go limp (no
  torque), as after the robot's own command timeout.
- ``--hang``: the trunk is held 0.6 m up (a test gantry), so leg motions do not move it.
- Every lowstate has the joints (q, dq, tau_est), the IMU (quaternion w x y z, gyro,
  accelerometer) and a valid CRC; ``--bad-state-crc`` sends wrong ones (a corrupting link).
- Counters (valid, bad-crc, wrong-level commands) are printed once a second.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

import mujoco
import numpy as np


def main(argv: list[str] | None = None) -> int:
    from rosmind.hardware.quadrupeds.unitree import (
        LOWLEVEL,
        POS_STOP,
        lowcmd_crc,
        lowstate_crc,
        sdk_modules,
    )
    from rosmind.sim.mujoco.models import QUADRUPEDS, build_model, joint_addresses, sensor_slices

    ap = argparse.ArgumentParser(prog="python -m rosmind.hardware.emulators.unitree", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interface", default="lo")
    ap.add_argument("--domain", type=int, default=1)
    ap.add_argument("--hang", action="store_true")
    ap.add_argument("--cmd-timeout-s", type=float, default=0.1)
    ap.add_argument("--bad-state-crc", action="store_true")
    args = ap.parse_args(argv)

    qm = QUADRUPEDS.get("go2").factory
    spec = qm.spec()
    model, _ = build_model("go2")
    model.opt.timestep = 0.002
    model.actuator_gainprm[:, 0] = 0.0  # the motors' PD runs here, on the lowcmd's gains
    model.actuator_biasprm[:, 1:3] = 0.0
    data = mujoco.MjData(model)
    qadr, vadr = joint_addresses(model, spec)
    sens = sensor_slices(model)
    effort = np.array(spec.limits("effort"))
    lying = np.array(qm.lying)
    data.qpos[2], data.qpos[3] = 0.6 if args.hang else 0.15, 1.0
    data.qpos[qadr] = lying
    mujoco.mj_forward(model, data)
    base = data.qpos[:7].copy()

    sdk = sdk_modules()
    sdk.init(args.domain, args.interface)
    pub = sdk.Publisher("rt/lowstate", sdk.LowState)
    pub.Init()
    lock = threading.Lock()
    latest = {"cmd": None, "at": -1e9}
    counts = {"valid": 0, "bad_crc": 0, "wrong_level": 0}

    def on_cmd(msg) -> None:
        if msg.crc != lowcmd_crc(msg):
            counts["bad_crc"] += 1
            return
        if msg.level_flag != LOWLEVEL:
            counts["wrong_level"] += 1
            return
        counts["valid"] += 1
        with lock:
            latest["cmd"], latest["at"] = msg, time.monotonic()

    sub = sdk.Subscriber("rt/lowcmd", sdk.LowCmd)
    sub.Init(on_cmd, 10)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    state = sdk.new_lowstate()
    state.head, state.level_flag = [0xFE, 0xEF], LOWLEVEL
    print(f"Go2 low-level emulator on DDS domain {args.domain} ({args.interface}), hang={args.hang}", flush=True)
    next_t, last_print, tick = time.monotonic(), time.monotonic(), 0
    while not stop.is_set():
        with lock:
            cmd, at = latest["cmd"], latest["at"]
        q, dq = data.qpos[qadr], data.qvel[vadr]
        tau = np.zeros(12)
        if cmd is not None and time.monotonic() - at <= args.cmd_timeout_s:
            for i in range(12):
                m = cmd.motor_cmd[i]
                pos = 0.0 if abs(m.q) >= POS_STOP * 0.99 else m.kp * (m.q - q[i])
                tau[i] = m.tau + pos + m.kd * (m.dq - dq[i])
        tau = np.clip(tau, -effort, effort)
        data.qfrc_applied[:] = 0.0
        data.qfrc_applied[vadr] = tau
        mujoco.mj_step(model, data)
        if args.hang:
            data.qpos[:7], data.qvel[:6] = base, 0.0
        tick += 1
        for i in range(12):
            ms = state.motor_state[i]
            ms.q, ms.dq, ms.tau_est = float(data.qpos[qadr[i]]), float(data.qvel[vadr[i]]), float(tau[i])
        imu = state.imu_state
        imu.quaternion = [float(v) for v in data.sensordata[sens["orientation"]]]
        imu.gyroscope = [float(v) for v in data.sensordata[sens["gyro"]]]
        imu.accelerometer = [float(v) for v in data.sensordata[sens["accelerometer"]]]
        state.tick = tick * 2
        state.crc = lowstate_crc(state) ^ (0xFFFF if args.bad_state_crc else 0)
        pub.Write(state)
        if time.monotonic() - last_print > 1.0:
            last_print = time.monotonic()
            print(f"lowcmd {counts}", flush=True)
        next_t += model.opt.timestep
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.1:
            next_t = time.monotonic()
    print(f"lowcmd {counts}", flush=True)
    try:
        sub.Close()
        pub.Close()
    except Exception:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``rosmind calibrate --robot so100 --port /dev/ttyACM0 --out so100.json [--invert j1,j2]``:
measure a servo arm's zero pose and joint ranges with its torque off (``rosmind.hardware.arms.
calibrate``), then write the calibration file hardware_node and the leader arm read."""

from __future__ import annotations

from pathlib import Path


def add_arguments(p):
    p.add_argument("--robot", required=True, help="robot spec with a servo bus (so100, koch)")
    p.add_argument("--port", required=True, help="the arm's serial port")
    p.add_argument("--out", required=True, type=Path, help="calibration JSON to write")
    p.add_argument("--invert", default="", help="comma-separated joints whose servo turns the other way")


def run(args) -> int:
    from rosmind.errors import SpecError
    from rosmind.hardware.arms.calibrate import calibrate
    from rosmind.hardware.drivers import make_hardware

    if args.out.exists():
        raise SpecError(f"{args.out} exists: remove it first (a calibration is not overwritten silently)")
    arm = make_hardware(args.robot, port=args.port)
    arm.connect()
    try:
        cal = calibrate(arm, input, invert=[j for j in args.invert.split(",") if j])
    finally:
        arm.disconnect()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cal.save(args.out)
    for name, j in cal.joints.items():
        print(f"{name:16s} servo {j.id}: zero {j.zero}, range {j.min}-{j.max}, direction {j.direction:+d}")
    print(f"calibration: {args.out}")
    return 0

"""RobotSpec: the one description of an embodiment that sim, drivers, safety and policies read.

A spec is a YAML file (``rosmind/robots/<name>.yaml``, or any path). Validation errors
name the file, the field and the problem, e.g.::

    launch/bad.yaml: joints[3].position: lower 1.2 is above upper 0.5
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rosmind.errors import SpecError

SENSOR_KINDS = ("joint_state", "rgb", "rgbd", "wrench", "imu", "odom", "tactile")
COMMAND_INTERFACES = ("position", "trajectory", "velocity", "cmd_vel")
ROBOTS_DIR = Path(__file__).parent / "robots"


@dataclass(frozen=True)
class JointSpec:
    name: str
    lower: float
    upper: float
    velocity: float
    acceleration: float
    effort: float
    role: str = "arm"  # arm | gripper | leg


@dataclass(frozen=True)
class SensorSpec:
    name: str
    kind: str
    rate_hz: float
    resolution: tuple[int, int] | None = None  # (width, height): image pixels, tactile taxels
    frame_id: str = ""


@dataclass(frozen=True)
class Workspace:
    """Axis-aligned box (metres, in ``frame``) that the end effector must stay inside."""

    frame: str
    min: tuple[float, float, float]
    max: tuple[float, float, float]


@dataclass(frozen=True)
class RobotSpec:
    name: str
    control_rate_hz: float
    joints: tuple[JointSpec, ...]
    sensors: tuple[SensorSpec, ...]
    command_interfaces: tuple[str, ...]
    base_frame: str = "base_link"
    ee_link: str = ""
    workspace: Workspace | None = None
    kind: str = "arm"  # arm | quadruped
    source: str = ""  # the file it came from, for messages
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def dof(self) -> int:
        return len(self.joints)

    @property
    def control_period(self) -> float:
        return 1.0 / self.control_rate_hz

    def limits(self, attr: str) -> list[float]:
        """Per-joint values of one JointSpec field, in joint order."""
        return [getattr(j, attr) for j in self.joints]

    def sensor(self, name: str) -> SensorSpec:
        for s in self.sensors:
            if s.name == name:
                return s
        raise SpecError(f"{self.source or self.name}: robot {self.name!r} has no sensor {name!r}; "
                        f"it has {[s.name for s in self.sensors]}")

    def sensors_of(self, *kinds: str) -> list[SensorSpec]:
        return [s for s in self.sensors if s.kind in kinds]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        return d

    def fingerprint(self) -> dict[str, Any]:
        """What a checkpoint must agree with to run on this robot (name, joints in order)."""
        return {"name": self.name, "joint_names": self.joint_names}


def _need(d: dict, key: str, where: str, types: type | tuple[type, ...]):
    if key not in d:
        raise SpecError(f"{where}: missing field {key!r}")
    v = d[key]
    if not isinstance(v, types) or isinstance(v, bool):
        tn = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
        raise SpecError(f"{where}.{key}: expected {tn}, got {type(v).__name__} {v!r}")
    return v


def _positive(v: float, where: str) -> float:
    if not math.isfinite(v) or v <= 0:
        raise SpecError(f"{where}: must be a positive finite number, got {v!r}")
    return float(v)


def _joint(d: Any, src: str, i: int) -> JointSpec:
    where = f"{src}: joints[{i}]"
    if not isinstance(d, dict):
        raise SpecError(f"{where}: expected a mapping, got {d!r}")
    name = _need(d, "name", where, str)
    pos = _need(d, "position", where, list)
    if len(pos) != 2 or not all(isinstance(x, (int, float)) for x in pos):
        raise SpecError(f"{where}.position: expected [lower, upper], got {pos!r}")
    lo, hi = float(pos[0]), float(pos[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise SpecError(f"{where}.position: lower {lo} must be below upper {hi}")
    role = d.get("role", "arm")
    if role not in ("arm", "gripper", "leg"):
        raise SpecError(f"{where}.role: expected arm, gripper or leg, got {role!r}")
    unknown = set(d) - {"name", "position", "velocity", "acceleration", "effort", "role"}
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {sorted(unknown)}")
    return JointSpec(
        name=name, lower=lo, upper=hi,
        velocity=_positive(_need(d, "velocity", where, (int, float)), f"{where}.velocity"),
        acceleration=_positive(_need(d, "acceleration", where, (int, float)), f"{where}.acceleration"),
        effort=_positive(_need(d, "effort", where, (int, float)), f"{where}.effort"),
        role=role,
    )


def _sensor(d: Any, src: str, i: int) -> SensorSpec:
    where = f"{src}: sensors[{i}]"
    if not isinstance(d, dict):
        raise SpecError(f"{where}: expected a mapping, got {d!r}")
    name = _need(d, "name", where, str)
    kind = _need(d, "kind", where, str)
    if kind not in SENSOR_KINDS:
        raise SpecError(f"{where}.kind: unknown sensor kind {kind!r}; expected one of {SENSOR_KINDS}")
    rate = _positive(_need(d, "rate_hz", where, (int, float)), f"{where}.rate_hz")
    res = d.get("resolution")
    if kind in ("rgb", "rgbd", "tactile"):
        unit = "taxels" if kind == "tactile" else "pixels"
        if (not isinstance(res, list) or len(res) != 2
                or not all(isinstance(x, int) and x > 0 for x in res)):
            raise SpecError(f"{where}.resolution: a {kind} sensor needs [width, height] in {unit}, got {res!r}")
        res = (res[0], res[1])
    elif res is not None:
        raise SpecError(f"{where}.resolution: only camera and tactile sensors have a resolution")
    return SensorSpec(name=name, kind=kind, rate_hz=rate, resolution=res, frame_id=str(d.get("frame_id", "")))


def spec_from_dict(data: Any, source: str = "<dict>") -> RobotSpec:
    """Validate a parsed YAML document into a RobotSpec; raise SpecError naming file and field."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    known = {"name", "kind", "control_rate_hz", "joints", "sensors", "command_interfaces",
             "base_frame", "ee_link", "workspace", "extra"}
    unknown = set(data) - known
    if unknown:
        raise SpecError(f"{source}: unknown field(s) {sorted(unknown)}; expected some of {sorted(known)}")
    name = _need(data, "name", source, str)
    rate = _positive(_need(data, "control_rate_hz", source, (int, float)), f"{source}: control_rate_hz")
    joints_raw = _need(data, "joints", source, list)
    if not joints_raw:
        raise SpecError(f"{source}: joints: a robot needs at least one joint")
    joints = tuple(_joint(j, source, i) for i, j in enumerate(joints_raw))
    names = [j.name for j in joints]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpecError(f"{source}: joints: duplicate joint name(s) {dup}")
    sensors = tuple(_sensor(s, source, i) for i, s in enumerate(data.get("sensors") or []))
    snames = [s.name for s in sensors]
    if len(set(snames)) != len(snames):
        raise SpecError(f"{source}: sensors: duplicate sensor names in {snames}")
    cmds = _need(data, "command_interfaces", source, list)
    for c in cmds:
        if c not in COMMAND_INTERFACES:
            raise SpecError(f"{source}: command_interfaces: unknown interface {c!r}; expected one of {COMMAND_INTERFACES}")
    kind = data.get("kind", "arm")
    if kind not in ("arm", "quadruped"):
        raise SpecError(f"{source}: kind: expected arm or quadruped, got {kind!r}")
    ws = None
    if data.get("workspace") is not None:
        w = data["workspace"]
        where = f"{source}: workspace"
        if not isinstance(w, dict):
            raise SpecError(f"{where}: expected a mapping with frame, min, max")
        lo, hi = _need(w, "min", where, list), _need(w, "max", where, list)
        if len(lo) != 3 or len(hi) != 3 or any(a >= b for a, b in zip(lo, hi, strict=True)):
            raise SpecError(f"{where}: min {lo} and max {hi} must be [x, y, z] with min < max")
        ws = Workspace(str(w.get("frame", data.get("base_frame", "base_link"))),
                       tuple(map(float, lo)), tuple(map(float, hi)))
    return RobotSpec(
        name=name, control_rate_hz=rate, joints=joints, sensors=sensors, command_interfaces=tuple(cmds),
        base_frame=str(data.get("base_frame", "base_link")), ee_link=str(data.get("ee_link", "")),
        workspace=ws, kind=kind, source=source, extra=dict(data.get("extra") or {}),
    )


def load_spec(name_or_path: str | Path) -> RobotSpec:
    """Load a spec by robot name (``panda``) or by YAML path."""
    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = ROBOTS_DIR / f"{name_or_path}.yaml"
        if not p.exists():
            known = sorted(f.stem for f in ROBOTS_DIR.glob("*.yaml"))
            raise SpecError(f"unknown robot {str(name_or_path)!r}: no spec {p}; known robots: {', '.join(known)}")
    if not p.exists():
        raise SpecError(f"{p}: robot spec file does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{p}:{at} malformed YAML: {getattr(e, 'problem', e)}") from None
    return spec_from_dict(data, str(p))

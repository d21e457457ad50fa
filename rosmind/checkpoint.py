"""Policy checkpoints: a folder with ``model.safetensors`` and ``manifest.json``. No pickle.

``model.safetensors`` holds every tensor of the policy's ``state_dict()`` (weights, EMA
weights when exported by the trainer, normalizer stats). ``manifest.json``::

    format_version   1
    family           registry name ("diffusion")
    config           the family's config dataclass as JSON
    observations     {key: {"topic", "msg_type", "shape"}}
    action           {"joint_names", "units", "kind": "absolute_position", "dim"}
    control_rate_hz, n_obs_steps, horizon, n_action_steps
    normalization    {key: {"min": [...], "max": [...]}}
    robot            {"fingerprint": {"name", "joint_names"}, "spec": RobotSpec.to_dict()}
    training         {"command", "dataset": {"path", "hash"}, "git_commit", "step", "created"}
    tensors          {name: shape}

``load_checkpoint(dir, robot_spec)`` rebuilds the policy and refuses, with a
``CheckpointError`` naming the folder and the field, anything that does not match.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
import types
import typing
from pathlib import Path
from typing import Any

from rosmind.errors import CheckpointError, SpecError, UnknownNameError
from rosmind.spec import RobotSpec, load_spec

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
MANIFEST = "manifest.json"


def observation_topic(key: str) -> tuple[str, str]:
    """Observation key -> (relative ROS topic, message type), from ``rosmind.schema``; keys no
    node publishes are recorded as ``(key, "unknown")`` (policy_node refuses them at load)."""
    from rosmind import schema

    try:
        b = schema.binding(key)
    except UnknownNameError:
        return key, "unknown"
    return b.topic, b.msg_type


def _jsonable(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _jsonable(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def config_to_json(cfg: Any) -> dict[str, Any]:
    """A config dataclass as plain JSON types (tuples become lists)."""
    return _jsonable(cfg)


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert a JSON (or parsed CLI) value against a dataclass field type annotation."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is typing.Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for a in args:
            if a is type(None):
                if value is None:
                    return None
                continue
            try:
                return coerce(value, a, where)
            except SpecError as e:
                errors.append(str(e))
        raise SpecError(errors[0] if errors else f"{where}: expected {tp}, got {value!r}")
    if origin is tuple or tp is tuple:
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"{where}: expected a list, got {value!r}")
        if args and args[-1] is Ellipsis:
            return tuple(coerce(x, args[0], f"{where}[{i}]") for i, x in enumerate(value))
        if args and len(args) != len(value):
            raise SpecError(f"{where}: expected {len(args)} items, got {len(value)}")
        types_ = args or (Any,) * len(value)
        return tuple(coerce(x, a, f"{where}[{i}]") for i, (a, x) in enumerate(zip(types_, value, strict=True)))
    if origin is list or tp is list:
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"{where}: expected a list, got {value!r}")
        return [coerce(x, args[0] if args else Any, f"{where}[{i}]") for i, x in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise SpecError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {coerce(k, kt, where): coerce(v, vt, f"{where}[{k!r}]") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def config_from_json(cls: type, data: Any, where: str) -> Any:
    """Rebuild a config dataclass from ``config_to_json`` output; unknown or ill-typed
    fields raise ``SpecError`` naming ``where`` and the field."""
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {unknown}; {cls.__name__} has {sorted(fields)}")
    kwargs = {k: coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def git_commit(cwd: str | Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _family_of(policy: Any) -> str:
    from rosmind.registry import POLICIES

    for name in POLICIES.names():
        if POLICIES.get(name).factory is type(policy):
            return name
    fam = getattr(policy, "family", None)
    if fam:
        return fam
    raise CheckpointError(f"policy type {type(policy).__name__} is not registered in POLICIES")


def build_manifest(policy: Any, robot_spec: RobotSpec, training: dict | None = None) -> dict[str, Any]:
    cfg = policy.config
    obs = {}
    shapes = getattr(cfg, "obs_shapes", {})
    for key in cfg.obs_keys:
        topic, msg = observation_topic(key)
        obs[key] = {"topic": topic, "msg_type": msg, "shape": list(shapes.get(key, ()))}
    units = ["m" if j.role == "gripper" else "rad" for j in robot_spec.joints]
    stats = policy.normalization_stats() if hasattr(policy, "normalization_stats") else {}
    return {
        "format_version": FORMAT_VERSION,
        "family": _family_of(policy),
        "config": config_to_json(cfg),
        "observations": obs,
        "action": {"joint_names": robot_spec.joint_names, "units": units, "kind": "absolute_position",
                   "dim": int(getattr(cfg, "action_dim", robot_spec.dof))},
        "control_rate_hz": robot_spec.control_rate_hz,
        "n_obs_steps": cfg.n_obs_steps, "horizon": cfg.horizon, "n_action_steps": cfg.n_action_steps,
        "normalization": stats,
        "robot": {"fingerprint": robot_spec.fingerprint(), "spec": _jsonable(robot_spec.to_dict())},
        "training": {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "git_commit": git_commit(), **(training or {})},
    }


def save_checkpoint(policy: Any, path: str | Path, robot_spec: RobotSpec | None = None,
                    training: dict | None = None) -> Path:
    """Write ``path/model.safetensors`` + ``path/manifest.json``; returns ``path``.

    ``training`` adds to the manifest's training section (command, dataset, step, ...).
    """
    from safetensors.torch import save_file

    path = Path(path)
    spec = robot_spec or load_spec(policy.config.robot)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in policy.state_dict().items()} \
        if hasattr(policy, "state_dict") else {}
    manifest = build_manifest(policy, spec, training)
    manifest["tensors"] = {k: list(v.shape) for k, v in tensors.items()}
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp), metadata={"format_version": str(FORMAT_VERSION), "family": manifest["family"]})
    tmp.replace(path / WEIGHTS)
    (path / (MANIFEST + ".tmp")).write_text(json.dumps(manifest, indent=1))
    (path / (MANIFEST + ".tmp")).replace(path / MANIFEST)
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint folder does not exist")
    mf = path / MANIFEST
    if not mf.is_file():
        raise CheckpointError(f"{path}: missing {MANIFEST}")
    try:
        manifest = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{mf}: corrupt JSON: {e}") from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{mf}: expected a JSON object at the top level")
    for fld in ("format_version", "family", "config", "robot"):
        if fld not in manifest:
            raise CheckpointError(f"{mf}: missing field {fld!r}")
    for fld, tp, what in (("family", str, "a string"), ("config", dict, "an object"), ("robot", dict, "an object")):
        if not isinstance(manifest[fld], tp):
            raise CheckpointError(f"{mf}: field {fld!r}: expected {what}, got {type(manifest[fld]).__name__} "
                                  f"{str(manifest[fld])[:80]!r}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{mf}: format_version {manifest['format_version']!r} is not supported "
                              f"(this rosmind reads {FORMAT_VERSION})")
    return manifest


def check_robot(manifest: dict, robot_spec: RobotSpec, where: str) -> None:
    """Refuse a robot whose name or joint names/order differ from the checkpoint's."""
    fp = manifest.get("robot", {}).get("fingerprint")
    if not isinstance(fp, dict) or "name" not in fp or "joint_names" not in fp:
        raise CheckpointError(f"{where}: field robot.fingerprint is missing or malformed")
    if fp["name"] != robot_spec.name:
        raise CheckpointError(f"{where}: robot.fingerprint.name: checkpoint was trained for robot "
                              f"{fp['name']!r}, not {robot_spec.name!r}")
    if list(fp["joint_names"]) != robot_spec.joint_names:
        raise CheckpointError(f"{where}: robot.fingerprint.joint_names: checkpoint expects joints "
                              f"{fp['joint_names']}, robot {robot_spec.name!r} has {robot_spec.joint_names}")


def load_checkpoint(path: str | Path, robot_spec: RobotSpec | None = None):
    """Rebuild the policy saved at ``path`` (eval mode, reset). With ``robot_spec``, refuse a
    checkpoint made for another robot or joint order."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from rosmind.registry import POLICIES

    path = Path(path)
    manifest = read_manifest(path)
    mf = path / MANIFEST
    if robot_spec is not None:
        check_robot(manifest, robot_spec, str(mf))
    try:
        entry = POLICIES.get(manifest["family"])
    except UnknownNameError as e:
        raise CheckpointError(f"{mf}: field family: {e}") from None
    try:
        cfg = config_from_json(entry.config, manifest["config"], f"{mf}: config") if entry.config else None
    except SpecError as e:
        raise CheckpointError(str(e)) from None
    policy = entry.factory(cfg) if cfg is not None else entry.factory()
    wf = path / WEIGHTS
    if not wf.is_file():
        raise CheckpointError(f"{path}: missing {WEIGHTS}")
    try:
        tensors = load_file(str(wf))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{wf}: unreadable safetensors file: {e}") from None
    expected = policy.state_dict() if hasattr(policy, "state_dict") else {}
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing:
        raise CheckpointError(f"{wf}: missing tensor key(s) {missing[:5]}{' ...' if len(missing) > 5 else ''} "
                              f"for family {manifest['family']!r}")
    if extra:
        raise CheckpointError(f"{wf}: unexpected tensor key(s) {extra[:5]}{' ...' if len(extra) > 5 else ''} "
                              f"for family {manifest['family']!r}")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{wf}: tensor {k!r} has shape {list(tensors[k].shape)}, the config "
                                  f"in {MANIFEST} implies {list(v.shape)}")
    if expected:
        policy.load_state_dict(tensors, strict=True)
    if hasattr(policy, "eval"):
        policy.eval()
    if hasattr(policy, "freeze_for_inference"):
        policy.freeze_for_inference()
    policy.reset()
    policy.manifest = manifest
    return policy

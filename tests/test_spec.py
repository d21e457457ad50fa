import math

import pytest
import yaml

from rosmind.errors import SpecError, UnknownNameError
from rosmind.registry import POLICIES, Registry
from rosmind.spec import load_spec

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name,dof", [("panda", 8), ("a1", 12)])
def test_shipped_specs_load(name, dof):
    spec = load_spec(name)
    assert spec.dof == dof and len(set(spec.joint_names)) == dof
    for j in spec.joints:
        assert j.lower < j.upper and j.velocity > 0 and j.acceleration > 0 and j.effort > 0
    assert math.isclose(spec.control_period, 1 / spec.control_rate_hz)


def test_panda_sensors():
    spec = load_spec("panda")
    assert {s.name for s in spec.sensors_of("rgbd")} == {"wrist", "gripper", "scene"}
    assert spec.sensor("wrench").kind == "wrench"
    assert spec.joints[-1].role == "gripper"


def test_a1_sensors():
    spec = load_spec("a1")
    assert spec.kind == "quadruped"
    assert {s.kind for s in spec.sensors} >= {"imu", "odom", "joint_state"}


def _write(tmp_path, data):
    p = tmp_path / "robot.yaml"
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


def _base():
    return {
        "name": "r", "control_rate_hz": 10, "command_interfaces": ["position"],
        "joints": [{"name": "j1", "position": [-1, 1], "velocity": 1, "acceleration": 1, "effort": 1}],
    }


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d["joints"][0].update(position=[1, -1]), "joints[0].position"),
    (lambda d: d["joints"][0].pop("velocity"), "joints[0]: missing field 'velocity'"),
    (lambda d: d["joints"][0].update(velocity=-2), "joints[0].velocity"),
    (lambda d: d["joints"].append(dict(d["joints"][0])), "duplicate joint name"),
    (lambda d: d.update(control_rate_hz="fast"), "control_rate_hz"),
    (lambda d: d.update(sensors=[{"name": "c", "kind": "rgb", "rate_hz": 10}]), "sensors[0].resolution"),
    (lambda d: d.update(sensors=[{"name": "c", "kind": "lidar", "rate_hz": 10}]), "unknown sensor kind"),
    (lambda d: d.update(command_interfaces=["torque_magic"]), "command_interfaces"),
    (lambda d: d.update(colour="red"), "unknown field"),
    (lambda d: d.update(workspace={"min": [0, 0, 0], "max": [1, -1, 1]}), "workspace"),
])
def test_validation_names_file_and_field(tmp_path, mutate, needle):
    d = _base()
    mutate(d)
    p = _write(tmp_path, d)
    with pytest.raises(SpecError) as e:
        load_spec(p)
    assert str(p) in str(e.value) and needle in str(e.value)


def test_malformed_yaml_names_line(tmp_path):
    p = _write(tmp_path, "name: r\njoints: [\n  - {name: a\n")
    with pytest.raises(SpecError, match=r"line \d+.*malformed YAML"):
        load_spec(p)


def test_unknown_robot_lists_known():
    with pytest.raises(SpecError, match="known robots: .*panda"):
        load_spec("pandaa")


def test_registry_unknown_name_lists_known():
    reg = Registry("widget")

    @reg.register("a")
    class A:
        pass

    assert reg.get("a").factory is A
    with pytest.raises(UnknownNameError, match="unknown widget 'b'; known widgets: a"):
        reg.get("b")


def test_registry_by_name_imports_only_that_module():
    import subprocess
    import sys

    code = ("import sys; from rosmind.registry import POLICIES; POLICIES.get('instant'); "
            "print('torch' in sys.modules, 'instant' in POLICIES._entries, 'diffusion' in POLICIES._entries)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "True", "False"], out.stderr
    assert "diffusion" in POLICIES.names() and "expert" in POLICIES.names()

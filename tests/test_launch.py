"""`rosmind launch`: parsing, substitutions and error messages (unit), process supervision with
real processes (unit, plain Python "nodes" from tests/launch_pkgs), and a real rclpy
talker/listener pair over DDS (ros)."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from procs import rclpy_teardown_hang

from rosmind.cli import main as cli_main
from rosmind.errors import SpecError
from rosmind.launch import load_launch
from rosmind.ros_args import parse_cli_args, ros_literal
from rosmind.supervisor import Supervisor

PKGS = Path(__file__).parent / "launch_pkgs"


@pytest.fixture
def pkgs(monkeypatch):
    """Make tests/launch_pkgs importable here and in child processes."""
    monkeypatch.syspath_prepend(str(PKGS))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(PKGS)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    return PKGS


def write(tmp_path: Path, text: str, name: str = "t.launch.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def node_yaml(exec_: str, name: str, extra: str = "") -> str:
    return f"- node:\n    pkg: fake_nodes\n    exec: {exec_}\n    name: {name}\n    output: screen\n{extra}"


MAIN = """\
launch:
- arg: {name: robot, default: panda, description: robot spec}
- arg: {name: rate}
- let: {name: topic, value: "$(var robot)/joint_states"}
- set_env: {name: ROSMIND_TEST_A, value: "a-$(var robot)"}
- group:
  - push_ros_namespace: {namespace: "$(var robot)"}
  - set_env: {name: ROSMIND_TEST_B, value: inner}
  - node:
      pkg: fake_nodes
      exec: show_args
      name: shown
      namespace: arm
      output: screen
      args: "--flag x"
      param:
      - {name: rate, value: "$(var rate)"}
      - {name: gain, value: 0.5}
      - {name: enabled, value: true}
      - {name: label, value: "'007'"}
      - {name: names, value: [a, "1"]}
      - {name: home, value: "$(env ROSMIND_TEST_UNSET_VAR /tmp/x)"}
      remap:
      - {from: joint_states, to: "/$(var topic)"}
- node: {pkg: fake_nodes, exec: sleeper}
"""


@pytest.mark.unit
def test_parse_resolves_args_substitutions_namespaces_and_typed_params(tmp_path, pkgs):
    plan = load_launch(write(tmp_path, MAIN), {"rate": "20", "robot": "a1"})
    assert plan.args == {"rate": "20", "robot": "a1"}
    shown, sleeper = plan.nodes
    assert (shown.label, shown.namespace, sleeper.label, sleeper.namespace) == \
        ("shown", "/a1/arm", "sleeper", "")
    assert dict(shown.env) == {"ROSMIND_TEST_A": "a-a1", "ROSMIND_TEST_B": "inner"}
    assert dict(sleeper.env) == {"ROSMIND_TEST_A": "a-a1"}  # the group's set_env is scoped
    params = {k: v for _, k, v in shown.params}
    assert params == {"rate": 20, "gain": 0.5, "enabled": True, "label": "007",
                      "names": ["a", "1"], "home": "/tmp/x"}
    argv = shown.argv("PY")
    assert argv[:6] == ["PY", "-m", "fake_nodes.show_args", "--flag", "x", "--ros-args"]
    assert argv[6:] == [
        "-r", "__node:=shown", "-r", "__ns:=/a1/arm",
        "-p", "rate:=20", "-p", "gain:=0.5", "-p", "enabled:=true", "-p", "label:='007'",
        "-p", "names:=[a, '1']", "-p", "home:=/tmp/x",
        "-r", "joint_states:=/a1/joint_states"]


@pytest.mark.unit
def test_ros_literal_round_trips_through_yaml():
    import yaml

    for v in (True, 3, -2.5, 1e-9, "true", "on", "12", "it's", "", "/a/b", "nan", "x: y",
              [1.0, 2.0], ["a", "b"], [True]):
        assert yaml.safe_load(ros_literal(v)) == v
    assert ros_literal([1, 2.5]) == "[1.0, 2.5]"  # ROS arrays are homogeneous
    assert (ros_literal("panda"), ros_literal("nan"), ros_literal("on")) == ("panda", "'nan'", "'on'")
    for bad in ([], [1, "a"], {"a": 1}, None):
        with pytest.raises(SpecError):
            ros_literal(bad, "x")


@pytest.mark.unit
def test_include_passes_args_and_param_files(tmp_path, pkgs):
    (tmp_path / "params.yaml").write_text("/**:\n  ros__parameters:\n    k: 1\n")
    write(tmp_path, "launch:\n- arg: {name: who}\n" + node_yaml(
        "sleeper", "$(var who)", "    param:\n    - {from: $(dirname)/params.yaml}\n"),
        "inner.launch.yaml")
    outer = write(tmp_path, "launch:\n- arg: {name: n, default: bob}\n- include:\n"
                  "    file: $(dirname)/inner.launch.yaml\n    arg: [{name: who, value: '$(var n)_2'}]\n")
    (node,) = load_launch(outer).nodes
    assert node.name == "bob_2"
    assert node.params == (("file", str((tmp_path / "params.yaml").resolve()), None),)
    assert "--params-file" in node.argv()


@pytest.mark.unit
def test_find_pkg_share_env_and_the_shipped_launch_file(tmp_path, pkgs, monkeypatch, repo):
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    monkeypatch.setenv("ROSMIND_TEST_SET", "from-env")
    f = write(tmp_path, "launch:\n" + node_yaml("sleeper", "s", "    param:\n"
              "    - {name: share, value: $(find-pkg-share rosmind_ros)}\n"
              "    - {name: e, value: $(env ROSMIND_TEST_SET)}\n"))
    params = {k: v for _, k, v in load_launch(f).nodes[0].params}
    assert params == {"share": str(repo), "e": "from-env"}  # pip install: the repo holds launch/
    shipped = repo / "launch" / "sim_pick_place.launch.yaml"
    if shipped.is_file():  # the demo graph must parse with `rosmind launch` too
        plan = load_launch(shipped, {"episodes": "1"})
        assert {n.executable for n in plan.nodes} >= {"robot_node", "policy_node"}


BAD = [
    ("launch:\n- arg: {name: policy, description: which policy}\n" + node_yaml("sleeper", "s"),
     {}, r"t\.launch\.yaml:2: launch argument 'policy' is required .*policy:=VALUE"),
    ("launch:\n- arg: {name: a, default: '1'}\n" + node_yaml("sleeper", "s"),
     {"b": "2"}, r"unknown launch argument 'b'; the file declares a"),
    ("launch:\n- node: {pkg: fake_nodes, exec: sleeper\n- arg: {name: x}\n",
     {}, r"t\.launch\.yaml:\d+: malformed YAML"),
    ("launch:\n- arg: {name: a, default: '1'}\n- nodee: {pkg: fake_nodes, exec: sleeper}\n",
     {}, r"t\.launch\.yaml:3: unknown action 'nodee'"),
    ("launch:\n" + node_yaml("sleeper", "s", "    respawn: true\n"),
     {}, r"t\.launch\.yaml:2: node: unknown attribute 'respawn'"),
    ("launch:\n" + node_yaml("nope", "s"),
     {}, r":2: node 's': package 'fake_nodes' has no executable 'nope'"),
    ("launch:\n- node: {pkg: no_such_pkg_xyz, exec: a}\n",
     {}, r":2: node 'a': unknown package 'no_such_pkg_xyz'"),
    ("launch:\n" + node_yaml("sleeper", "$(var missing)"),
     {}, r":2: \$\(var missing\) is not defined here"),
    ("launch:\n" + node_yaml("sleeper", "s", "    param:\n    - {from: /no/such.yaml}\n"),
     {}, r"parameter file '/no/such.yaml' does not exist"),
    ("launch:\n" + node_yaml("sleeper", "s", "    on_exit: restart\n"),
     {}, r"on_exit 'restart' is not supported"),
    ("launch:\n" + node_yaml("sleeper", "bad-name"),
     {}, r"'bad-name' is not a valid ROS node name"),
    ("nodes: []\n", {}, r"a launch file is a mapping with one key 'launch'"),
    ("launch:\n" + node_yaml("sleeper", "s", "    param:\n    - {name: p, value: []}\n"),
     {}, r"param 'p': an empty list has no ROS parameter type"),
]


@pytest.mark.unit
@pytest.mark.parametrize("text,args,pattern", BAD)
def test_bad_launch_files_name_file_line_and_element(tmp_path, pkgs, text, args, pattern):
    with pytest.raises(SpecError, match=pattern):
        load_launch(write(tmp_path, text), args)


@pytest.mark.unit
def test_cli_reports_one_paragraph_and_starts_nothing(tmp_path, pkgs, capsys):
    f = write(tmp_path, "launch:\n- arg: {name: r}\n" + node_yaml("crasher", "c"))
    assert cli_main(["launch", str(f)]) == 2
    err = capsys.readouterr()
    assert "t.launch.yaml:2: launch argument 'r' is required" in err.err
    assert "Traceback" not in err.err and "started" not in err.out
    assert cli_main(["launch", str(f), "r=1"]) == 2
    assert "not of the form name:=value" in capsys.readouterr().err
    assert cli_main(["launch", str(f), "r:=1", "--print"]) == 0
    assert "fake_nodes.crasher --ros-args -r __node:=c" in capsys.readouterr().out
    with pytest.raises(SpecError):
        parse_cli_args(["1x:=2"])


def supervise(tmp_path, text, **kw) -> tuple[int, str]:
    out = io.StringIO()
    plan = load_launch(write(tmp_path, text))
    code = Supervisor(plan, dict(os.environ), out=out, log_dir=tmp_path / "log", **kw).run()
    return code, out.getvalue()


@pytest.mark.unit
def test_crashing_node_is_reported_and_others_stopped(tmp_path, pkgs):
    code, out = supervise(tmp_path, "launch:\n" + node_yaml("sleeper", "steady")
                          + node_yaml("crasher", "policy_node", "    args: --code 3\n"))
    assert code == 1
    assert "[launch] node 'policy_node' died with exit code 3" in out
    assert "[policy_node] crasher: something broke" in out  # stderr is shown too
    assert "[steady] sleeper stopping (SIGINT)" in out


@pytest.mark.unit
def test_on_exit_shutdown_ends_the_launch_cleanly(tmp_path, pkgs):
    code, out = supervise(tmp_path, "launch:\n" + node_yaml("sleeper", "other") + node_yaml(
        "sleeper", "main", "    on_exit: shutdown\n    args: --exit-after 0.3\n"))
    assert code == 0
    assert "node 'main' exited (on_exit: shutdown)" in out
    assert "[other] sleeper stopping (SIGINT)" in out


@pytest.mark.unit
def test_stop_escalates_to_sigterm_and_log_output_goes_to_file(tmp_path, pkgs):
    text = "launch:\n- node: {pkg: fake_nodes, exec: stubborn}\n" + node_yaml("sleeper", "quiet") \
        .replace("output: screen", "output: log")
    out = io.StringIO()
    sup = Supervisor(load_launch(write(tmp_path, text)), dict(os.environ), out=out,
                     log_dir=tmp_path / "log", grace_s=0.5)
    timer = threading.Timer(1.5, sup.request_stop)
    timer.start()
    try:
        code = sup.run()
    finally:
        timer.cancel()
    text_out = out.getvalue()
    assert code == 1
    assert "'stubborn' still running; sending SIGTERM" in text_out
    assert "sleeper up" not in text_out  # output: log keeps stdout off the screen ...
    assert "sleeper up" in (tmp_path / "log" / "quiet.log").read_text()  # ... and in the file
    assert [p.popen.returncode for p in sup.procs] == [-signal.SIGTERM, 0]


@pytest.mark.unit
def test_nodes_that_finish_end_the_launch_with_zero(tmp_path, pkgs):
    code, out = supervise(tmp_path, "launch:\n" + node_yaml("show_args", "a")
                          + node_yaml("sleeper", "b", "    args: --exit-after 0.2\n"))
    assert code == 0
    assert "node 'a' exited with code 0" in out and "node 'b' exited with code 0" in out


class Launcher:
    """`rosmind launch` as a subprocess whose output lines are collected by a thread."""

    def __init__(self, file: Path, env: dict[str, str], *args: str):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rosmind.cli", "launch", str(file), *args], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hit = next((ln for ln in list(self.lines) if re.search(pattern, ln)), None)
            if hit:
                return hit
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.lines))

    def finish(self, timeout: float = 20.0) -> int:
        rc = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


ROS_LAUNCH = """\
launch:
- arg: {name: prefix, default: hello}
- arg: {name: crash_after, default: "0.0"}
- group:
  - push_ros_namespace: {namespace: pair}
  - node:
      pkg: fake_nodes
      exec: talker
      name: talker
      output: screen
      param:
      - {name: prefix, value: "$(var prefix)"}
      - {name: period, value: 0.05}
      - {name: crash_after, value: "$(var crash_after)"}
      - {name: crash_code, value: 3}
      - {name: flags, value: [true, false]}
      - {name: names, value: [a, "1"]}
      - {name: label, value: "'007'"}
  - node: {pkg: fake_nodes, exec: listener, name: listener, output: screen}
"""


def _clean_stop(out: str, label: str, line: str) -> bool:
    """Node ``label`` printed its clean-shutdown ``line``, or run_node's stop deadline ended a
    hang inside rclpy's own teardown (see ``procs.rclpy_teardown_hang``)."""
    if re.search(rf"^\[{label}\] {line}", out, re.M):
        return True
    return rclpy_teardown_hang("\n".join(ln for ln in out.splitlines() if ln.startswith(f"[{label}] ")))


@pytest.mark.ros
def test_rclpy_pair_talks_over_dds_and_sigint_stops_both(tmp_path, ros_env):
    env = dict(ros_env, PYTHONPATH=str(PKGS))
    launcher = Launcher(write(tmp_path, ROS_LAUNCH), env, "prefix:=ping")
    try:
        params = launcher.wait_for(r"^\[talker\] PARAMS ")
        assert '"label": ["str", "007"]' in params and '"period": ["float", 0.05]' in params
        assert '"flags": ["list", [true, false]]' in params
        assert '"names": ["list", ["a", "1"]]' in params
        launcher.wait_for(r"^\[listener\] heard: ping \d+ \(ns /pair\)")
        launcher.proc.send_signal(signal.SIGINT)
        assert launcher.finish() == 0
    finally:
        launcher.kill()
    out = "\n".join(launcher.lines)
    assert _clean_stop(out, "talker", r"talker: clean shutdown"), out
    assert _clean_stop(out, "listener", r"listener: clean shutdown after [1-9]"), out
    assert "still running" not in out


@pytest.mark.ros
def test_rclpy_node_crash_is_reported_and_the_other_stopped(tmp_path, ros_env):
    env = dict(ros_env, PYTHONPATH=str(PKGS))
    launcher = Launcher(write(tmp_path, ROS_LAUNCH), env, "crash_after:=1.0")
    try:
        rc = launcher.finish(timeout=60)
    finally:
        launcher.kill()
    out = "\n".join(launcher.lines)
    assert rc == 1, out
    assert "[launch] node 'talker' died with exit code 3; stopping the other nodes" in out
    assert re.search(r"^\[listener\] heard: hello \d+", out, re.M), out
    assert _clean_stop(out, "listener", r"listener: clean shutdown"), out

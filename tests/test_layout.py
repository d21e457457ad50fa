"""The pure-Python core never imports rclpy (DESIGN.md "Layout"): checked statically over
every source file and dynamically by importing every module in a fresh interpreter."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
CORE = {"rosmind": REPO / "rosmind", "rosmind.policies": REPO / "policies",
        "rosmind.sim": REPO / "sim", "rosmind.hardware": REPO / "hardware"}


def _modules():
    for pkg, root in CORE.items():
        for f in sorted(root.rglob("*.py")):
            rel = f.relative_to(root).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield f, ".".join([pkg, *parts])


def test_no_rclpy_import_statement():
    offenders = []
    for f, _ in _modules():
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "rclpy" or n.startswith("rclpy.") or n.startswith("rosmind_ros") for n in names):
                offenders.append(f"{f.relative_to(REPO)}:{node.lineno}")
    assert not offenders, f"core modules import rclpy/rosmind_ros: {offenders}"


def test_importing_every_core_module_leaves_rclpy_unloaded():
    mods = [m for _, m in _modules()]
    code = (
        "import importlib, json, sys\n"
        f"mods = {mods!r}\n"
        "failed = {}\n"
        "for m in mods:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except Exception as e:\n"
        "        failed[m] = repr(e)\n"
        "print(json.dumps({'rclpy': sorted(k for k in sys.modules if k.split('.')[0] in ('rclpy', 'rosmind_ros')),"
        " 'failed': failed}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd="/")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert not res["failed"], res["failed"]
    assert res["rclpy"] == [], f"rclpy loaded by core imports: {res['rclpy']}"
    assert len(mods) > 10

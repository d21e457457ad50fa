"""Untrusted files, fuzzed (hypothesis): checkpoints (weights bit-flipped or truncated, manifests
with fields deleted or retyped) and robot spec YAML (bytes flipped, lines cut) give a clear
``UserError`` naming the file, or load; never another exception, a hang or code execution."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rosmind.checkpoint import load_checkpoint
from rosmind.errors import UserError
from rosmind.spec import ROBOTS_DIR, load_spec

pytestmark = pytest.mark.unit
CKPT = Path(__file__).resolve().parents[1] / "checkpoints" / "a1_walk"
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _copy(tmp_path: Path) -> Path:
    out = tmp_path / "ckpt"
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(CKPT, out)
    return out


def _loads_or_user_error(fn) -> None:
    try:
        fn()
    except UserError:
        pass  # the clear error; any other exception type fails the test


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 20_000)))
def test_corrupt_weights(tmp_path, flips, cut):
    ck = _copy(tmp_path)
    wf = ck / "model.safetensors"
    data = bytearray(wf.read_bytes())
    for at, x in flips:  # the header (length + JSON) and the first tensors
        data[at % len(data)] ^= x
    wf.write_bytes(bytes(data[:cut] if cut is not None else data))
    _loads_or_user_error(lambda: load_checkpoint(ck))


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                           max_leaves=6)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.booleans(), JSON_VALUES), min_size=1, max_size=4))
@example(edits=[(1, False, [])])  # found by CI on 2026-12-06: family became a list (a TypeError in the registry)
def test_corrupt_manifest(tmp_path, edits):
    ck = _copy(tmp_path)
    mf = ck / "manifest.json"
    manifest = json.loads(mf.read_text())

    def paths(obj, prefix=()):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield prefix + (k,)
                yield from paths(v, prefix + (k,))

    every = list(paths(manifest))
    for at, delete, value in edits:
        *parents, key = every[at % len(every)]
        node = manifest
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and key in node:
            if delete:
                del node[key]
            else:
                node[key] = value
    mf.write_text(json.dumps(manifest))
    _loads_or_user_error(lambda: load_checkpoint(ck))


@FUZZ
@given(robot=st.sampled_from(["panda", "a1", "go2", "so100", "ur5e"]),
       flips=st.lists(st.tuples(st.integers(0, 5000), st.integers(1, 127)), max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 5000)))
def test_corrupt_spec_yaml(tmp_path, robot, flips, cut):
    data = bytearray((ROBOTS_DIR / f"{robot}.yaml").read_bytes())
    for at, x in flips:
        data[at % len(data)] ^= x
    p = tmp_path / f"{robot}.yaml"
    p.write_bytes(bytes(data[:cut] if cut is not None else data))
    _loads_or_user_error(lambda: load_spec(p))


def test_no_pickle_on_any_path():
    """No source file can deserialize pickle: no pickle/dill/joblib import, no torch.load, no
    numpy allow_pickle (rsl-rl's own torch.save/load is replaced in policies/rl.py)."""
    import re

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"^\s*(import|from)\s+(pickle|cPickle|dill|joblib)\b|torch\.load\(|allow_pickle\s*=\s*True"
                         r"|pickle\.loads?\(", re.M)
    offenders = []
    for folder in ("rosmind", "policies", "sim", "hardware", "ros2_ws", "benchmarks", "scripts"):
        for f in (root / folder).rglob("*.py"):
            if pattern.search(f.read_text(errors="replace")):
                offenders.append(str(f.relative_to(root)))
    assert not offenders, f"pickle-capable code: {offenders}"

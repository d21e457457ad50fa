"""Shared fixtures. ROS-tier tests each get their own ROS_DOMAIN_ID, held by a file lock
so concurrent pytest runs on one machine never share a DDS domain."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from rosmind.ros_env import ros_environ

# Two cores run the suite, and ROS tests run several node processes at once: one intra-op
# thread per process avoids OpenMP oversubscription (seen here: 2 threads under load made a
# DDIM step 50x slower). Set before torch is imported; node subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
_LOCK_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "rosmind-domains"


def _claim_domain():
    _LOCK_DIR.mkdir(parents=True, exist_ok=True)
    # 1..100: inside the range whose DDS ports do not collide (0..101 on Linux).
    for did in range(1, 101):
        f = open(_LOCK_DIR / f"{did}.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return did, f
        except OSError:
            f.close()
    raise RuntimeError("no free ROS_DOMAIN_ID in 1..100")


@pytest.fixture
def ros_domain(monkeypatch):
    """A ROS_DOMAIN_ID no other test on this machine is using; set in os.environ too."""
    did, lock = _claim_domain()
    for k, v in ros_environ(did, base={}).items():
        monkeypatch.setenv(k, v)
    try:
        yield did
    finally:
        lock.close()


@pytest.fixture
def ros_env(ros_domain):
    """The environment for node subprocesses in this test's domain."""
    return ros_environ(ros_domain)


@pytest.fixture
def repo() -> Path:
    return REPO

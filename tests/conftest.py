"""Shared fixtures. ROS-tier tests each get their own ROS_DOMAIN_ID, held by a file lock
so concurrent pytest runs on one machine never share a DDS domain."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rosmind.ros_env import claim_domain, ros_environ

# Two cores run the suite, and ROS tests run several node processes at once: one intra-op
# thread per process avoids OpenMP oversubscription (seen here: 2 threads under load made a
# DDIM step 50x slower). Set before torch is imported; node subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def ros_domain(monkeypatch):
    """A ROS_DOMAIN_ID no other test on this machine is using; set in os.environ too."""
    did, lock = claim_domain()
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
def one_thread():
    """One torch intra-op thread for the test: the suite shares 2 cores with other jobs, and
    more threads only add contention there."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def repo() -> Path:
    return REPO

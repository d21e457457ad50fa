"""Where ROS packages live without importing them: a package's share folder (``$(find-pkg-share)``)
and whether ``python -m pkg.module`` exists (for launch files and benchmarks)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
# Where `$(find-pkg-share PKG)` points when no ament index knows PKG (pip-only install): the
# folder whose launch/ holds the files that colcon would install to share/PKG/launch.
SHARE_FALLBACK = {"rosmind_ros": _REPO}


def find_pkg_share(pkg: str) -> Path:
    """The share folder of ``pkg``: from the ament index when one is set up (a ROS install),
    else rosmind's pip-install fallback (``SHARE_FALLBACK``)."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        pass
    else:
        try:
            return Path(get_package_share_directory(pkg))
        except (PackageNotFoundError, LookupError, ValueError, OSError):
            pass
    if pkg in SHARE_FALLBACK and (SHARE_FALLBACK[pkg] / "launch").is_dir():
        return SHARE_FALLBACK[pkg]
    raise KeyError(pkg)


def module_exists(module: str) -> bool:
    """Whether ``python -m module`` would find it, without importing anything (the parent
    package's ``__init__`` may import rclpy, which this process must not)."""
    pkg, _, sub = module.rpartition(".")
    try:
        spec = importlib.util.find_spec(pkg)
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    return importlib.machinery.PathFinder.find_spec(sub, list(spec.submodule_search_locations)) \
        is not None

"""Panda URDF variants written next to pybullet_data's own file: low-poly visuals (what the
cameras render) and a wipe tool fixed to the hand. Each is written once per content into the
temp directory, atomically, so parallel workers can share it."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pybullet_data


def low_poly_panda_urdf() -> str:
    """pybullet_data's Panda with its convex collision meshes as visuals too (3k instead of
    100k triangles: TinyRenderer frames ~5x faster). Physics is unchanged. Written once per
    content into the temp directory, atomically, so parallel workers can share it."""
    src = Path(pybullet_data.getDataPath()) / "franka_panda" / "panda.urdf"
    text = src.read_text()
    meshes = (src.parent / "meshes" / "collision").as_posix()
    text = text.replace("package://meshes/visual/", f"{meshes}/").replace(
        "package://meshes/collision/", f"{meshes}/")
    return _write_once(text, "rosmind-panda")


def _write_once(text: str, prefix: str) -> str:
    """``text`` as a temp file named by its content hash, written atomically once (parallel
    workers share it); its path."""
    out = Path(tempfile.gettempdir()) / f"{prefix}-{hashlib.sha1(text.encode()).hexdigest()[:12]}.urdf"
    if not out.exists():
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, out)
    return str(out)


def tool_panda_urdf(tool) -> str:
    """``low_poly_panda_urdf()`` plus ``tool`` (``sim.tasks_contact.Tool``): a sphere (or, with
    ``tool.box`` half extents, a box) link fixed below ``panda_hand``, so its contact wrench
    passes the hand joint's F/T sensor."""
    off = float(tool.offset)
    mass = 0.05
    box = getattr(tool, "box", None)
    if box:
        hx, hy, hz = (float(v) for v in box)
        geometry = f'<box size="{2 * hx} {2 * hy} {2 * hz}"/>'
        ixx, iyy, izz = (mass / 3 * (b * b + c * c) for b, c in ((hy, hz), (hx, hz), (hx, hy)))
        colour, material = "0.6 0.62 0.66 1", "peg"
    else:
        r = float(tool.radius)
        geometry = f'<sphere radius="{r}"/>'
        ixx = iyy = izz = 0.4 * mass * r * r
        colour, material = "0.95 0.8 0.2 1", "sponge"
    link = (f'  <link name="{tool.link}">\n'
            f'    <inertial><origin xyz="0 0 0"/><mass value="{mass}"/><inertia ixx="{ixx}" ixy="0" ixz="0" '
            f'iyy="{iyy}" iyz="0" izz="{izz}"/></inertial>\n'
            f'    <visual><geometry>{geometry}</geometry>'
            f'<material name="{material}"><color rgba="{colour}"/></material></visual>\n'
            f'    <collision><geometry>{geometry}</geometry></collision>\n  </link>\n'
            f'  <joint name="{tool.link}_joint" type="fixed"><parent link="panda_hand"/>'
            f'<child link="{tool.link}"/><origin xyz="0 0 {off}" rpy="0 0 0"/></joint>\n</robot>')
    return _write_once(Path(low_poly_panda_urdf()).read_text().replace("</robot>", link), "rosmind-panda-tool")

"""Argument text between rosmind and ROS 2 processes: typed values as the ``-p name:=value``
YAML rcl parses back to the same type (``ros_literal``), and ``name:=value`` launch arguments
(``parse_cli_args``). Used by ``rosmind.launch`` (node command lines) and ``rosmind launch``."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import yaml

from rosmind.errors import SpecError

_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")
_CLI_ARG = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):=(.*)$", re.S)


def ros_literal(value: Any, where: str = "") -> str:
    """A typed value -> the YAML text rcl parses back to the same type (for ``-p k:=v``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        # YAML 1.1 (PyYAML, launch_ros) reads "1e-09" as a string; "1.0e-09" is a float everywhere.
        mantissa, e, exp = text.partition("e")
        return f"{mantissa}.0{e}{exp}" if e and "." not in mantissa else text
    if isinstance(value, str):
        # (strtod in rcl's parser would read nan/inf/infinity as doubles)
        if (_PLAIN.match(value) and yaml.safe_load(value) == value
                and value.lower() not in ("nan", "inf", "infinity")):
            return value  # reads back as this string: no quotes needed
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list | tuple):
        if not value:
            raise SpecError(f"{where}: an empty list has no ROS parameter type; omit the param")
        kinds = {bool if isinstance(v, bool) else type(v) for v in value}
        if kinds == {int, float}:
            value = [float(v) for v in value]
        elif len(kinds) != 1 or not kinds <= {bool, int, float, str}:
            raise SpecError(f"{where}: a list parameter must hold one scalar type, got {value!r}")
        return "[" + ", ".join(ros_literal(v, where) for v in value) + "]"
    raise SpecError(f"{where}: value {value!r} is not a ROS parameter type "
                    "(bool, int, float, str or a list of one of them)")


def parse_cli_args(extra: Sequence[str]) -> dict[str, str]:
    """``["robot:=panda", ...]`` -> ``{"robot": "panda"}``; anything else is a SpecError."""
    out: dict[str, str] = {}
    for a in extra:
        m = _CLI_ARG.match(a)
        if not m:
            raise SpecError(f"launch argument {a!r} is not of the form name:=value")
        out[m.group(1)] = m.group(2)
    return out

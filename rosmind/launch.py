"""ROS 2 YAML launch files: the subset of the ``ros2 launch`` YAML frontend that rosmind uses.

``load_launch(path, {"name": "value"})`` parses a file into a ``LaunchPlan`` (a tuple of
``NodeSpec`` plus the ``set_env`` environment); ``rosmind.supervisor.Supervisor`` runs it.
Nothing here imports rclpy: a node is started as ``python -m <pkg>.<exec> --ros-args ...``
and rclpy in that process parses its own arguments. The same file must work with a real
``ros2 launch``, so only standard syntax is accepted:

.. code-block:: yaml

    launch:
    - arg: {name: robot, default: panda, description: "robot spec name"}
    - let: {name: ns, value: "/$(var robot)"}
    - set_env: {name: RCUTILS_COLORIZED_OUTPUT, value: "0"}
    - group:
      - push_ros_namespace: {namespace: "$(var ns)"}
      - node:
          pkg: rosmind_ros
          exec: policy_node
          name: policy_node
          output: screen            # screen | log (default, stderr still shown) | both
          on_exit: shutdown         # the whole launch ends when this node exits
          param:
          - {name: robot, value: "$(var robot)"}
          - {from: "$(find-pkg-share rosmind_ros)/launch/config/policy.yaml"}
          remap:
          - {from: joint_trajectory, to: policy/joint_trajectory}
          env:
          - {name: OMP_NUM_THREADS, value: "1"}
    - include:
        file: "$(dirname)/other.launch.yaml"
        arg: [{name: robot, value: "$(var robot)"}]

Substitutions: ``$(var NAME)``, ``$(env NAME [default])``, ``$(find-pkg-share PKG)``,
``$(dirname)``. Parameter values keep their YAML type; a string value is typed after
substitution the way launch_ros does (``"3"`` -> 3, ``"true"`` -> True, ``"[1, 2]"`` -> list).

Every problem (malformed YAML, unknown action or attribute, missing or unknown argument,
unknown package or executable) raises ``SpecError`` naming ``file:line`` and the element,
before any process starts.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rosmind.errors import SpecError
from rosmind.packages import SHARE_FALLBACK, find_pkg_share, module_exists  # noqa: F401 (re-exported)
from rosmind.ros_args import ros_literal

_ROS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ROS_NS = re.compile(r"^/?([A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*)?/?$")
OUTPUTS = ("screen", "log", "both")


@dataclass(frozen=True)
class NodeSpec:
    """One ``node`` action, fully substituted. ``params`` keeps file order: each entry is
    ``("value", name, typed_value)`` or ``("file", path, None)``."""

    pkg: str
    executable: str
    name: str | None = None
    namespace: str = ""
    params: tuple[tuple[str, str, Any], ...] = ()
    remaps: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()
    output: str = "log"
    on_exit: str | None = None
    source: str = ""
    label: str = ""

    @property
    def module(self) -> str:
        return f"{self.pkg}.{self.executable}"

    def argv(self, python: str = sys.executable) -> list[str]:
        """The command line: ``python -m pkg.exec [args] --ros-args -r __node:=... ...``."""
        cmd = [python, "-m", self.module, *self.args, "--ros-args"]
        if self.name:
            cmd += ["-r", f"__node:={self.name}"]
        if self.namespace:
            cmd += ["-r", f"__ns:={self.namespace}"]
        for kind, key, value in self.params:
            if kind == "file":
                cmd += ["--params-file", key]
            else:
                cmd += ["-p", f"{key}:={ros_literal(value, where=f'{self.source}: param {key!r}')}"]
        for src, dst in self.remaps:
            cmd += ["-r", f"{src}:={dst}"]
        return cmd


@dataclass(frozen=True)
class LaunchPlan:
    """What a launch file resolves to: nodes in start order (each carries the ``set_env`` and
    ``env`` variables that apply to it) and the final values of the declared arguments."""

    source: str
    nodes: tuple[NodeSpec, ...]
    args: dict[str, str] = field(default_factory=dict)


class _Map(dict):
    line = 0


class _Seq(list):
    line = 0


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences remember their line (for messages)."""


def _map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    m = _Map(loader.construct_mapping(node, deep=True))
    m.line = node.start_mark.line + 1
    return m


def _seq(loader: _Loader, node: yaml.SequenceNode) -> _Seq:
    s = _Seq(loader.construct_sequence(node, deep=True))
    s.line = node.start_mark.line + 1
    return s


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _seq)


def _split_args(text: str) -> list[str]:
    """Split substitution arguments on spaces, keeping quoted parts (``''`` is an empty
    argument) and nested ``$(..)`` whole."""
    out: list[str] = []
    cur, has, depth, quote, i = "", False, 0, "", 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
            else:
                cur += c
        elif c in "'\"" and depth == 0:
            quote, has = c, True
        elif text.startswith("$(", i):
            depth, cur, has, i = depth + 1, cur + "$(", True, i + 1
        elif c == ")" and depth:
            depth, cur = depth - 1, cur + c
        elif c.isspace() and depth == 0:
            if has:
                out.append(cur)
            cur, has = "", False
        else:
            cur, has = cur + c, True
        i += 1
    if has:
        out.append(cur)
    return out


@dataclass
class _Scope:
    vars: dict[str, str]
    env: dict[str, str]
    ns: str = ""

    def child(self) -> _Scope:
        return _Scope(dict(self.vars), dict(self.env), self.ns)


class _Parser:
    ACTIONS = ("arg", "let", "set_env", "node", "group", "push_ros_namespace",
               "push-ros-namespace", "include")
    NODE_ATTRS = ("pkg", "exec", "name", "namespace", "output", "on_exit", "param", "remap",
                  "env", "args")

    def __init__(self, overrides: Mapping[str, str]):
        self.overrides = dict(overrides)
        self.declared: set[str] = set()
        self.nodes: list[NodeSpec] = []
        self.files: list[Path] = []

    def load_file(self, path: Path, where: str) -> tuple[Path, list]:
        path = Path(path)
        if not path.is_file():
            raise SpecError(f"{where}: launch file {str(path)!r} does not exist")
        if path.resolve() in self.files:
            raise SpecError(f"{where}: {path} includes itself (include cycle)")
        try:
            doc = yaml.load(path.read_text(), Loader=_Loader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e)
            raise SpecError(f"{path}{line}: malformed YAML: {problem}") from None
        if not isinstance(doc, dict) or set(doc) != {"launch"} or not isinstance(doc["launch"], list):
            raise SpecError(f"{path}: a launch file is a mapping with one key 'launch' holding a "
                            "list of actions (arg, let, node, group, include, ...)")
        return path, doc["launch"]

    def run_file(self, path: Path, scope: _Scope, where: str) -> None:
        path, actions = self.load_file(path, where)
        self.files.append(path.resolve())
        try:
            self.actions(actions, scope, path)
        finally:
            self.files.pop()

    def actions(self, items: list, scope: _Scope, path: Path) -> None:
        for item in items:
            line = getattr(items, "line", 0)
            if isinstance(item, _Map):
                line = item.line
            at = f"{path}:{line}"
            if not isinstance(item, dict) or len(item) != 1:
                raise SpecError(f"{at}: each launch entry is one action such as '- node: {{...}}', "
                                f"got {item!r}")
            (tag, body), = item.items()
            if tag not in self.ACTIONS:
                raise SpecError(f"{at}: unknown action {tag!r}; rosmind launch supports "
                                f"{', '.join(self.ACTIONS)}")
            getattr(self, "do_" + tag.replace("-", "_"))(body, scope, path, at)

    def attrs(self, body: Any, allowed: Sequence[str], required: Sequence[str], what: str,
              at: str) -> dict:
        if not isinstance(body, dict):
            raise SpecError(f"{at}: {what} needs a mapping of attributes, got {body!r}")
        unknown = [k for k in body if k not in allowed]
        if unknown:
            raise SpecError(f"{at}: {what}: unknown attribute {unknown[0]!r} (supported: "
                            f"{', '.join(allowed)})")
        missing = [k for k in required if k not in body]
        if missing:
            raise SpecError(f"{at}: {what}: missing required attribute {missing[0]!r}")
        return body

    def subst(self, value: Any, scope: _Scope, path: Path, at: str) -> str:
        """Resolve all ``$(...)`` in ``value`` (converted to str)."""
        text, out, i = str(value), "", 0
        while i < len(text):
            if not text.startswith("$(", i):
                out += text[i]
                i += 1
                continue
            depth, j = 1, i + 2
            while j < len(text) and depth:
                if text.startswith("$(", j):
                    depth += 1
                    j += 1
                elif text[j] == ")":
                    depth -= 1
                j += 1
            if depth:
                raise SpecError(f"{at}: unclosed substitution in {text!r}")
            out += self.substitution(text[i + 2:j - 1], scope, path, at)
            i = j
        return out

    def substitution(self, inner: str, scope: _Scope, path: Path, at: str) -> str:
        parts = [self.subst(p, scope, path, at) for p in _split_args(inner)]
        if not parts:
            raise SpecError(f"{at}: empty substitution $()")
        kind, args = parts[0], parts[1:]
        if kind == "var" and len(args) == 1:
            if args[0] not in scope.vars:
                raise SpecError(f"{at}: $(var {args[0]}) is not defined here; declare it with an "
                                f"'arg' or 'let' before use (defined: {sorted(scope.vars)})")
            return scope.vars[args[0]]
        if kind == "env" and len(args) in (1, 2):
            value = scope.env.get(args[0], os.environ.get(args[0]))
            if value is None:
                if len(args) == 1:
                    raise SpecError(f"{at}: environment variable {args[0]!r} is not set and "
                                    "$(env ...) has no default")
                return args[1]
            return value
        if kind == "find-pkg-share" and len(args) == 1:
            try:
                return str(find_pkg_share(args[0]))
            except KeyError:
                raise SpecError(f"{at}: $(find-pkg-share {args[0]}): package {args[0]!r} not "
                                "found in the ament index (AMENT_PREFIX_PATH)") from None
        if kind == "dirname" and not args:
            return str(path.parent.resolve())
        raise SpecError(f"{at}: unsupported substitution $({inner}); rosmind launch supports "
                        "$(var NAME), $(env NAME [default]), $(find-pkg-share PKG), $(dirname)")

    def typed(self, value: Any, scope: _Scope, path: Path, at: str) -> Any:
        """A param value: YAML-typed values stay, strings in a YAML list stay strings; a
        string value is substituted, then typed as YAML (``"$(var n)"`` -> 3)."""
        if isinstance(value, list):
            return [self.subst(v, scope, path, at) if isinstance(v, str)
                    else self.typed(v, scope, path, at) for v in value]
        if not isinstance(value, str):
            if isinstance(value, dict) or value is None:
                raise SpecError(f"{at}: param value {value!r} is not a scalar or list")
            return value
        text = self.subst(value, scope, path, at)
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            return text
        if isinstance(parsed, bool | int | float | str):
            return parsed
        if isinstance(parsed, list) and all(isinstance(v, bool | int | float | str) for v in parsed):
            return parsed
        return text

    def do_arg(self, body, scope, path, at):
        a = self.attrs(body, ("name", "default", "description"), ("name",), "arg", at)
        name = str(a["name"])
        self.declared.add(name)
        if name in scope.vars:
            return
        if a.get("default") is None:
            raise SpecError(f"{at}: launch argument {name!r} is required (it has no default); "
                            f"pass {name}:=VALUE" + (f" ({a['description']})" if a.get("description") else ""))
        scope.vars[name] = self.subst(a["default"], scope, path, at)

    def do_let(self, body, scope, path, at):
        a = self.attrs(body, ("name", "value"), ("name", "value"), "let", at)
        scope.vars[str(a["name"])] = self.subst(a["value"], scope, path, at)

    def do_set_env(self, body, scope, path, at):
        a = self.attrs(body, ("name", "value"), ("name", "value"), "set_env", at)
        scope.env[self.subst(a["name"], scope, path, at)] = self.subst(a["value"], scope, path, at)

    def do_push_ros_namespace(self, body, scope, path, at):
        a = self.attrs(body, ("namespace",), ("namespace",), "push_ros_namespace", at)
        scope.ns = self.join_ns(scope.ns, self.subst(a["namespace"], scope, path, at), at)

    def do_group(self, body, scope, path, at):
        if isinstance(body, dict):
            a = self.attrs(body, ("scoped", "children"), ("children",), "group", at)
            scoped = str(a.get("scoped", True)).lower() not in ("false", "0")
            children = a["children"]
        else:
            scoped, children = True, body
        if not isinstance(children, list):
            raise SpecError(f"{at}: group needs a list of actions")
        inner = scope.child() if scoped else scope
        self.actions(children, inner, path)

    def do_include(self, body, scope, path, at):
        a = self.attrs(body, ("file", "arg"), ("file",), "include", at)
        # A relative path is relative to the working directory, as in ros2 launch; files
        # next to this one are "$(dirname)/other.launch.yaml".
        target = Path(self.subst(a["file"], scope, path, at)).absolute()
        inner = scope.child()
        for entry in a.get("arg") or []:
            e = self.attrs(entry, ("name", "value"), ("name", "value"), "include arg", at)
            inner.vars[str(e["name"])] = self.subst(e["value"], scope, path, at)
        self.run_file(target, inner, at)

    @staticmethod
    def join_ns(base: str, ns: str, at: str) -> str:
        if not _ROS_NS.match(ns):
            raise SpecError(f"{at}: {ns!r} is not a valid ROS namespace")
        if ns.startswith("/"):
            full = ns
        else:
            full = base.rstrip("/") + "/" + ns
        full = "/" + full.strip("/")
        return "" if full == "/" else full

    def do_node(self, body, scope, path, at):
        a = self.attrs(body, self.NODE_ATTRS, ("pkg", "exec"), "node", at)
        s = {k: self.subst(a[k], scope, path, at) for k in
             ("pkg", "exec", "name", "namespace", "output", "on_exit", "args") if k in a}
        label = s.get("name") or s["exec"]
        what = f"node {label!r}"
        if "name" in s and not _ROS_NAME.match(s["name"]):
            raise SpecError(f"{at}: {what}: {s['name']!r} is not a valid ROS node name")
        output = s.get("output", "log")
        if output not in OUTPUTS:
            raise SpecError(f"{at}: {what}: output {output!r} is not one of {', '.join(OUTPUTS)}")
        on_exit = s.get("on_exit")
        if on_exit not in (None, "shutdown"):
            raise SpecError(f"{at}: {what}: on_exit {on_exit!r} is not supported (only 'shutdown')")
        ns = self.join_ns(scope.ns, s.get("namespace", ""), f"{at}: {what}")
        module = f"{s['pkg']}.{s['exec']}"
        if not all(_ROS_NAME.match(p) for p in (s["pkg"], s["exec"])) or not module_exists(module):
            pkg_ok = _ROS_NAME.match(s["pkg"]) and importlib.util.find_spec(s["pkg"]) is not None
            problem = (f"package {s['pkg']!r} has no executable {s['exec']!r} (no module {module})"
                       if pkg_ok else f"unknown package {s['pkg']!r} (no Python package of that name)")
            raise SpecError(f"{at}: {what}: {problem}")
        params: list[tuple[str, str, Any]] = []
        for p in self.entries(a, "param", at, what):
            if "from" in p:
                self.attrs(p, ("from",), ("from",), f"{what} param", at)
                f = Path(self.subst(p["from"], scope, path, at)).absolute()  # cwd, as ros2 launch
                if not f.is_file():
                    raise SpecError(f"{at}: {what}: parameter file {str(f)!r} does not exist")
                params.append(("file", str(f), None))
            else:
                self.attrs(p, ("name", "value"), ("name", "value"), f"{what} param", at)
                key = self.subst(p["name"], scope, path, at)
                value = self.typed(p["value"], scope, path, f"{at}: {what}: param {key!r}")
                ros_literal(value, where=f"{at}: {what}: param {key!r}")
                params.append(("value", key, value))
        remaps = []
        for r in self.entries(a, "remap", at, what):
            self.attrs(r, ("from", "to"), ("from", "to"), f"{what} remap", at)
            remaps.append((self.subst(r["from"], scope, path, at), self.subst(r["to"], scope, path, at)))
        env = []
        for e in self.entries(a, "env", at, what):
            self.attrs(e, ("name", "value"), ("name", "value"), f"{what} env", at)
            env.append((self.subst(e["name"], scope, path, at), self.subst(e["value"], scope, path, at)))
        taken = {n.label for n in self.nodes}
        unique, k = label, 2
        while unique in taken:
            unique, k = f"{label}-{k}", k + 1
        self.nodes.append(NodeSpec(
            pkg=s["pkg"], executable=s["exec"], name=s.get("name"), namespace=ns,
            params=tuple(params), remaps=tuple(remaps), env=tuple(scope.env.items()) + tuple(env),
            args=tuple(shlex.split(s.get("args", ""))), output=output, on_exit=on_exit,
            source=at, label=unique))

    @staticmethod
    def entries(a: dict, key: str, at: str, what: str) -> list[dict]:
        items = a.get(key) or []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise SpecError(f"{at}: {what}: {key} must be a list of mappings")
        return items


def load_launch(path: str | Path, args: Mapping[str, str] | None = None) -> LaunchPlan:
    """Parse and fully resolve a launch file; ``args`` are the ``name:=value`` overrides.

    Raises ``SpecError`` for any problem (see the module docstring); an override naming an
    argument that no ``arg`` in the file (or its includes) declares is an error too.
    """
    args = dict(args or {})
    parser = _Parser(args)
    scope = _Scope(vars=dict(args), env={})
    parser.run_file(Path(path), scope, where="rosmind launch")
    unknown = sorted(set(args) - parser.declared)
    if unknown:
        raise SpecError(f"{path}: unknown launch argument {unknown[0]!r}; the file declares "
                        f"{', '.join(sorted(parser.declared)) or 'no arguments'}")
    if not parser.nodes:
        raise SpecError(f"{path}: the launch file starts no node")
    values = {k: scope.vars[k] for k in sorted(parser.declared) if k in scope.vars}
    return LaunchPlan(source=str(path), nodes=tuple(parser.nodes), args=values)

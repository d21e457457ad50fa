"""ROS parameters derived from config dataclasses, and the one way every node process runs.

``declare_from_dataclass(node, FooConfig)`` declares one ROS parameter per dataclass field
(default = the field's default), reads the values (launch files / ``-p name:=value``
overrides win), checks their types, and builds the dataclass, whose ``__post_init__``
validates them. A node therefore never lists its parameters twice.

Supported field types: ``bool``, ``int``, ``float`` (an int value is accepted), ``str``,
``Literal[...]`` of str/int, ``list[float|int|str|bool]``, ``tuple[X, ...]`` / fixed-length
tuples (passed as ROS arrays), ``dict`` (a YAML/JSON mapping in a string parameter, e.g.
``-p "extra:='{k: 1}'"``: rcl needs the inner quotes), and ``X | None`` of those (unset or ``""`` = ``None``). A field without
a default is a required parameter.

``run_node(factory)`` initialises rclpy, builds the node, spins it until SIGINT/SIGTERM (or
until the node sets ``node.exit_code``), then destroys it and shuts rclpy down. A node that
wants a multi-threaded executor sets the attribute ``executor_threads`` (> 1); one that wants
another executor sets ``make_executor`` (a callable returning it, e.g. rclpy's EventsExecutor). A
``UserError`` (bad parameter, unknown robot, ...) is printed as one paragraph and the process
exits with its ``exit_code`` (2), without a traceback. Once a node is asked to stop (or stops
itself), its teardown has ``STOP_DEADLINE_S`` (the node's ``stop_deadline_s`` attribute if it
has one; ``None``: no deadline): a teardown that hangs (a callback that never returns, a DDS
participant waiting on a peer) gets every thread's stack printed to stderr and the process
exits with 1, so a launch does not need SIGKILL and the hang is on record.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import signal
import sys
import threading
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import rclpy
import yaml
from rcl_interfaces.msg import ParameterDescriptor
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from rosmind.errors import SpecError, UserError

T = TypeVar("T")
_SCALARS = (bool, int, float, str)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _coerce_scalar(value: Any, tp: Any) -> Any:
    """Return ``value`` as ``tp`` or raise TypeError; ints are accepted for floats."""
    if typing.get_origin(tp) is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            raise TypeError(f"expected one of {list(choices)}")
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (bool, str) and isinstance(value, tp):
        return value
    raise TypeError(f"expected {tp.__name__}")


def _coerce(value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if tp is dict or origin is dict:
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value) if value.strip() else {}
            except yaml.YAMLError as e:
                raise TypeError(f"expected a YAML mapping ({e.__class__.__name__})") from None
        if not isinstance(value, dict):
            raise TypeError("expected a YAML mapping such as {key: value}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected a list ({_type_name(tp)})")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise TypeError(f"expected {len(args)} values ({_type_name(tp)})")
            return tuple(_coerce_scalar(v, a) for v, a in zip(value, args, strict=True))
        elem = args[0] if args else str
        out = [_coerce_scalar(v, elem) for v in value]
        return tuple(out) if origin is tuple else out
    return _coerce_scalar(value, tp)


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _check_supported(tp: Any, where: str) -> None:
    origin = typing.get_origin(tp)
    if tp is dict or origin is dict:
        ok = True
    elif origin in (list, tuple):
        elems = [a for a in typing.get_args(tp) if a is not Ellipsis] or [str]
        ok = all(e in _SCALARS or typing.get_origin(e) is typing.Literal for e in elems)
    else:
        ok = tp in _SCALARS or origin is typing.Literal
    if not ok:
        raise TypeError(f"{where}: field type {_type_name(tp)} cannot be a ROS parameter; "
                        "pass skip=(...) and set it in code")


def _ros_default(value: Any) -> Any:
    """The value to declare: lists for tuples; None where ROS cannot infer a type (empty list)."""
    if isinstance(value, tuple | list):
        return list(value) if value else None
    if isinstance(value, dict):
        return yaml.safe_dump(value, default_flow_style=True).strip() if value else None
    return value


def declare_from_dataclass(node: Node, cfg_cls: type[T], *, skip: Iterable[str] = (),
                           **fixed: Any) -> T:
    """Declare one parameter per field of ``cfg_cls`` on ``node``, read them, build the config.

    ``skip``: fields not exposed as parameters (they keep their dataclass default unless given
    in ``fixed``). ``fixed``: field values set in code (not parameters), e.g. an injected object.
    Raises ``SpecError`` (a ``UserError``) naming the node and the parameter when a value has
    the wrong type, a required parameter is missing, or ``__post_init__`` rejects the values;
    the error is also logged on the node.
    """
    if not dataclasses.is_dataclass(cfg_cls):
        raise TypeError(f"{cfg_cls!r} is not a dataclass")
    hints = typing.get_type_hints(cfg_cls)
    skip = set(skip) | set(fixed)
    where = f"node {node.get_fully_qualified_name()}"
    kwargs: dict[str, Any] = dict(fixed)
    try:
        for f in dataclasses.fields(cfg_cls):
            if not f.init or f.name in skip:
                continue
            tp, optional = _unwrap_optional(hints[f.name])
            _check_supported(tp, f"{cfg_cls.__name__}.{f.name}")
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = dataclasses.MISSING
            declared = None if default is dataclasses.MISSING else _ros_default(default)
            desc = ParameterDescriptor(
                description=f"{cfg_cls.__name__}.{f.name}: {_type_name(hints[f.name])}",
                dynamic_typing=True)
            value = node.declare_parameter(f.name, declared, desc).value
            if value is None:
                if default is dataclasses.MISSING:
                    raise SpecError(f"{where}: parameter {f.name!r} is required "
                                    f"({_type_name(tp)}); set it with -p {f.name}:=VALUE")
                kwargs[f.name] = default
                continue
            if optional and value == "":
                kwargs[f.name] = None
                continue
            try:
                kwargs[f.name] = _coerce(value, tp)
            except TypeError as e:
                raise SpecError(f"{where}: parameter {f.name!r}: {e}, got {value!r}") from None
        try:
            return cfg_cls(**kwargs)
        except UserError as e:
            raise SpecError(f"{where}: invalid parameters: {e}") from None
        except (ValueError, TypeError) as e:
            raise SpecError(f"{where}: invalid parameters for {cfg_cls.__name__}: {e}") from None
    except UserError as e:
        node.get_logger().error(str(e))
        raise


STOP_DEADLINE_S = 4.0
"""Seconds an orderly shutdown may take, from the stop request to the process exit. Under the
launcher's SIGINT grace (``rosmind.supervisor``: 5 s), so the launcher never escalates."""


def _arm_stop_deadline(name: str, deadline_s: float) -> Callable[[], None]:
    """After ``deadline_s``, print every thread's stack to stderr and ``_exit(1)``; returns the
    function that disarms it.

    The dump and exit come from faulthandler's own C thread, so they happen even when the
    main thread hangs in C code holding the GIL. A Python timer first says what is going on
    (when the GIL lets it run, which is the common case).
    """
    warn_s = 0.75 * deadline_s

    def say():
        print(f"{name}: shutdown not done {warn_s:.1f} s after the stop request; at "
              f"{deadline_s:.1f} s the stacks of its threads are printed and it exits with code 1",
              file=sys.stderr, flush=True)

    timer = threading.Timer(warn_s, say)
    timer.daemon = True
    timer.start()
    try:
        faulthandler.dump_traceback_later(deadline_s, exit=True, file=sys.__stderr__)
        armed = True
    except (AttributeError, ValueError, OSError):  # no stderr file descriptor to write to
        armed = False

    def disarm():
        timer.cancel()
        if armed:
            faulthandler.cancel_dump_traceback_later()

    return disarm


def run_node(node_factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """Run one node in this process until SIGINT/SIGTERM; return the process exit code.

    0 after a SIGINT/SIGTERM-triggered shutdown (also during construction), ``node.exit_code``
    if the node set one, the error's ``exit_code`` (2) for a ``UserError`` (construction or
    callback). A teardown longer than ``STOP_DEADLINE_S`` ends the process with 1 (see
    ``_arm_stop_deadline``). Typical use::

        def main(argv=None):
            sys.exit(run_node(SafetyNode, argv))
    """
    name = getattr(node_factory, "__name__", "node")
    stopping: dict[str, Any] = {"flag": False, "constructing": False, "disarm": None,
                                "deadline_s": STOP_DEADLINE_S}

    def arm_deadline():
        if stopping["disarm"] is None and stopping["deadline_s"] is not None:
            stopping["disarm"] = _arm_stop_deadline(name, float(stopping["deadline_s"]))

    def on_signal(signum, _frame):
        stopping["flag"] = True
        arm_deadline()
        if stopping["constructing"]:  # a constructor may block (waiting for a topic): interrupt it
            raise KeyboardInterrupt

    # Our own handlers for both signals: the spin loop below wakes every 100 ms to honour them,
    # so shutdown is orderly (destroy_node, then rclpy shutdown) instead of a context tear-down
    # from inside a callback.
    try:
        rclpy.init(args=sys.argv if args is None else args,
                   signal_handler_options=SignalHandlerOptions.NO)
    except RCLError as e:  # e.g. a malformed -p override on the command line
        print(f"{name}: error: bad ROS arguments: {e}", file=sys.stderr)
        return 2
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    node: Node | None = None
    code = 0
    try:
        stopping["constructing"] = True
        node = node_factory()
        stopping["constructing"] = False
        name = node.get_name()
        stopping["deadline_s"] = getattr(node, "stop_deadline_s", STOP_DEADLINE_S)
        threads = int(getattr(node, "executor_threads", 1) or 1)
        make_executor = getattr(node, "make_executor", None)
        if make_executor is not None:
            executor = make_executor()
        else:
            executor = (MultiThreadedExecutor(num_threads=threads) if threads > 1
                        else SingleThreadedExecutor())
        executor.add_node(node)
        while not stopping["flag"] and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
            if getattr(node, "exit_code", None) is not None:
                code = int(node.exit_code)
                break
        executor.shutdown(timeout_sec=1.0)
    except UserError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        code = e.exit_code
    except KeyboardInterrupt:  # our handler, during construction: still an orderly stop
        code = 0
    except ExternalShutdownException:
        code = 0
    finally:
        stopping["constructing"] = False
        arm_deadline()  # also when the node stopped itself or failed
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        if stopping["disarm"] is not None:
            stopping["disarm"]()
        for s, h in old.items():
            signal.signal(s, h)
    return code

"""The ``rosmind`` command line.

Each subcommand is a module under ``rosmind.commands`` with ``add_arguments(parser)`` and
``run(args) -> int``, imported only when it is invoked. User errors (``UserError``) print
one paragraph naming what and where and exit nonzero, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rosmind.errors import UserError

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("rosmind.commands.demo", "run the main job: the pick_place graph in sim, printing outcomes"),
    "launch": ("rosmind.commands.launch", "run a ROS 2 YAML launch file (the `ros2 launch` subset we use)"),
    "bench": ("rosmind.commands.bench", "run a benchmark and write its JSON"),
    "collect": ("rosmind.commands.collect", "collect scripted-expert demonstrations into a zarr buffer"),
    "train": ("rosmind.commands.train", "train a policy on a zarr dataset"),
    "eval": ("rosmind.commands.eval", "evaluate a checkpoint in sim, directly or through ROS 2"),
    "convert": ("rosmind.commands.convert", "recorded MCAP episodes -> a zarr dataset (explicit time sync)"),
    "replay": ("rosmind.commands.replay", "send a recorded episode's commands back through safety"),
    "calibrate": ("rosmind.commands.calibrate", "measure a servo arm's zero pose and joint ranges"),
}


def _available() -> dict[str, tuple[str, str]]:
    return {k: v for k, v in COMMANDS.items() if importlib.util.find_spec(v[0]) is not None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rosmind", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    cmds = _available()
    argv = sys.argv[1:] if argv is None else argv
    # Only the module of the invoked command is imported (torch stays out of `rosmind launch`).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (mod, help_) in cmds.items():
        p = sub.add_parser(name, help=help_)
        if name == chosen:
            importlib.import_module(mod).add_arguments(p)
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(cmds[args.command][0])
    if rest and not getattr(module, "ACCEPTS_EXTRA", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.extra = rest
    try:
        return int(module.run(args) or 0)
    except UserError as e:
        print(f"rosmind {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``rosmind bench NAME [options]``: run one benchmark and write its JSON.

``BENCHMARKS`` maps each name to a module with ``add_arguments(parser)`` and
``run(args) -> int``; only the chosen one is imported. Add a benchmark by adding its module
here. ``rosmind bench NAME --help`` shows that benchmark's options.
"""

from __future__ import annotations

import argparse
import importlib

from rosmind.errors import UnknownNameError

BENCHMARKS: dict[str, str] = {
    "transport": "rosmind.bench.transport",
    "inference": "rosmind.bench.inference",
    "policies": "rosmind.bench.policies",
    "recorder": "rosmind.bench.recorder",
    "render": "rosmind.bench.render",
    "camera_graph": "rosmind.bench.camera_graph",
    "locomotion": "rosmind.bench.locomotion",
    "rdp": "rosmind.bench.rdp",
    "faults": "rosmind.bench.faults",
    "resip": "rosmind.bench.resip",
}
ACCEPTS_EXTRA = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help=f"benchmark: {', '.join(sorted(BENCHMARKS))}")
    parser.add_argument("options", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.epilog = "Options after NAME belong to the benchmark; see `rosmind bench NAME --help`."


def run(args: argparse.Namespace) -> int:
    if args.name not in BENCHMARKS:
        raise UnknownNameError(f"unknown benchmark {args.name!r}; known benchmarks: "
                               f"{', '.join(sorted(BENCHMARKS))}")
    module = importlib.import_module(BENCHMARKS[args.name])
    parser = argparse.ArgumentParser(prog=f"rosmind bench {args.name}",
                                     description=(module.__doc__ or "").strip().splitlines()[0])
    module.add_arguments(parser)
    options = list(getattr(args, "options", []) or []) + list(getattr(args, "extra", []) or [])
    return int(module.run(parser.parse_args(options)) or 0)

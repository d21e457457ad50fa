"""Benchmarks behind ``rosmind bench NAME``: each module has ``add_arguments(parser)`` and
``run(args) -> int`` and is listed in ``rosmind.commands.bench.BENCHMARKS``. Results are
JSON files (by convention under benchmarks/results/)."""

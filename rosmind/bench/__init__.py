"""Benchmarks behind ``rosmind bench NAME``: each module has ``add_arguments(parser)`` and
``run(args) -> int`` and is listed in ``rosmind.commands.bench.BENCHMARKS``. Results are
JSON files (by convention under benchmarks/results/)."""


def write_result(path, out: dict) -> None:
    """A benchmark's result ``out`` as JSON at ``path`` (its folder made if needed)."""
    import json
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")

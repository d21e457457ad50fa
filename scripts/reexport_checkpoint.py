"""Re-export a checkpoint with run-time policy fields changed and the weights untouched.

    python scripts/reexport_checkpoint.py checkpoints/diffusion_pick_place OUT policy.action_anchor=command

Only fields that leave the weights' meaning alone may change: ``action_anchor`` and the
family's ``resumable_fields`` (e.g. CARP's decoding). The manifest keeps the original
training provenance and records the re-export under ``training.reexport``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import typing
from pathlib import Path

from rosmind.checkpoint import coerce, load_checkpoint, read_manifest, save_checkpoint
from rosmind.errors import UserError
from rosmind.policies.presets import parse_value

ALWAYS = ("action_anchor",)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("fields", nargs="+", metavar="policy.FIELD=VALUE")
    args = p.parse_args(argv)
    policy = load_checkpoint(args.src)
    cfg = policy.config
    free = set(ALWAYS) | set(getattr(type(cfg), "resumable_fields", ()))
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for item in args.fields:
        key, eq, text = item.partition("=")
        name = key.removeprefix("policy.")
        if not eq or name not in free:
            raise UserError(f"{item!r}: expected policy.<field>=<value> with a field of {sorted(free)}")
        changes[name] = coerce(parse_value(text, hints[name]), hints[name], key)
    new_cfg = dataclasses.replace(cfg, **changes)
    policy.config = new_cfg
    training = dict(read_manifest(args.src).get("training", {}))
    training["reexport"] = {"from": str(args.src), "changed": {k: str(v) for k, v in changes.items()},
                            "command": shlex.join(["python", "scripts/reexport_checkpoint.py", *sys.argv[1:]])}
    save_checkpoint(policy, args.out, training={k: v for k, v in training.items() if k not in ("created", "git_commit")})
    print(f"{args.out}: {changes}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"reexport_checkpoint: error: {e}", file=sys.stderr)
        sys.exit(2)

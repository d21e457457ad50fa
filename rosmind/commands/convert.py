"""``rosmind convert EPISODES_DIR --out data.zarr [--spec conv.yaml] [--sync nearest|previous]
[--max-skew-ms M] [--rate HZ]``: recorded episodes -> a zarr replay buffer for ``rosmind train``.

Prints one line per episode (ticks, per-topic dropped/duplicated frames, problems) and writes
the full report as JSON (``--report``, and the buffer's ``conversion`` attribute). See
``rosmind.convert`` for the time-sync policy.
"""

from __future__ import annotations

import json


def add_arguments(p):
    p.add_argument("episodes", help="an episode directory or a folder of them (recorder out_dir)")
    p.add_argument("--out", required=True, help="zarr replay buffer to write")
    p.add_argument("--spec", help="conversion spec YAML (keys, clock, sync; see rosmind.convert)")
    p.add_argument("--sync", choices=("nearest", "previous"), help="time-sync policy (default: nearest)")
    p.add_argument("--max-skew-ms", type=float, help="count ticks whose message is farther than this")
    p.add_argument("--rate", type=float, help="resample the control clock at HZ (default: joint_states ticks)")
    p.add_argument("--robot", help="joint order from this robot spec (default: the episodes' robot)")
    p.add_argument("--append", action="store_true", help="append to --out instead of overwriting it")
    p.add_argument("--success-only", action="store_true", help="only episodes marked successful")
    p.add_argument("--report", help="write the conversion report JSON here")


def run(args) -> int:
    from dataclasses import replace

    from rosmind.convert import ConversionSpec, convert

    spec = ConversionSpec.load(args.spec) if args.spec else ConversionSpec()
    overrides = {k: v for k, v in (("sync", args.sync), ("max_skew_ms", args.max_skew_ms),
                                   ("rate_hz", args.rate), ("robot", args.robot)) if v is not None}
    spec = replace(spec, **overrides)
    report = convert(args.episodes, args.out, spec, append=args.append, success_only=args.success_only)
    for ep in report["episodes"]:
        frames = ", ".join(f"{t} -{r['dropped']}/+{r['duplicated']}"
                           + (f" ({r['over_skew']} ticks over {args.max_skew_ms or spec.max_skew_ms:g} ms)"
                              if r.get("over_skew") else "")
                           for t, r in ep["topics"].items())
        a = ep["action"]
        print(f"{ep['episode']}: {ep['ticks']} ticks{'' if ep['complete'] else ' (truncated)'}; "
              f"dropped/duplicated frames: {frames}; action: {a['commands']} commands, "
              f"{a['ticks_before_first_command']} ticks before the first")
        for p in ep["problems"]:
            print(f"  problem: {p}")
    for s in report["skipped"]:
        print(f"skipped {s['episode']}: {s['why']}")
    print(f"{args.out}: {report['episodes_in_buffer']} episodes, {report['steps_in_buffer']} steps")
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1)
    return 0

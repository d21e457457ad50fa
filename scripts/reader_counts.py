"""Per episode of a recorder_node output folder: messages in metadata.yaml vs what rosbags'
AnyReader (the directory and the bare MCAP file) and the mcap reader read, plus camera frames.

    python scripts/reader_counts.py data/episodes [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import yaml


def counts(ep: Path) -> dict:
    from mcap.reader import make_reader
    from rosbags.highlevel import AnyReader

    meta = yaml.safe_load((ep / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    want = Counter({t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]})
    file = ep / meta["relative_file_paths"][0]
    out = {"episode": ep.name, "metadata": sum(want.values())}
    for name, path in (("anyreader_dir", ep), ("anyreader_file", file)):
        with AnyReader([path]) as r:
            out[name] = sum(1 for _ in r.messages(connections=r.connections))
    with open(file, "rb") as f:
        got = Counter(ch.topic for _, ch, _ in make_reader(f).iter_messages())
    out["mcap"] = sum(got.values())
    out["camera_frames"] = {t: n for t, n in got.items() if "/camera/" in t}
    out["joint_states"] = got.get("/joint_states", 0)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("episodes", type=Path)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rows = [counts(d) for d in sorted(args.episodes.iterdir()) if (d / "metadata.yaml").is_file()]
    for r in rows:
        print(json.dumps(r))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

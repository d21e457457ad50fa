"""Exits with the code given as ``--code N`` after ``--after S`` seconds (default 3 after 0.3 s)."""

import sys
import time

args = sys.argv
code = int(args[args.index("--code") + 1]) if "--code" in args else 3
after = float(args[args.index("--after") + 1]) if "--after" in args else 0.3
print("crasher up", flush=True)
time.sleep(after)
print("crasher: something broke", file=sys.stderr, flush=True)
sys.exit(code)

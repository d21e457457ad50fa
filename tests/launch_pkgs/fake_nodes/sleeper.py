"""Prints a line, then sleeps until SIGINT/SIGTERM (exit 0) or ``--exit-after S`` (exit 0)."""

import signal
import sys
import time

stop = []
signal.signal(signal.SIGINT, lambda *_: stop.append("SIGINT"))
signal.signal(signal.SIGTERM, lambda *_: stop.append("SIGTERM"))
exit_after = float(sys.argv[sys.argv.index("--exit-after") + 1]) if "--exit-after" in sys.argv else 1e9
print("sleeper up", flush=True)
t0 = time.monotonic()
while not stop and time.monotonic() - t0 < exit_after:
    time.sleep(0.02)
print(f"sleeper stopping ({stop[0] if stop else 'done'})", flush=True)

"""Ignores SIGINT (so the launcher must escalate to SIGTERM)."""

import signal
import time

signal.signal(signal.SIGINT, signal.SIG_IGN)
print("stubborn up", flush=True)
while True:
    time.sleep(0.05)

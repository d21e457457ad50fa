"""Prints its argv after ``-m`` and two environment variables, then exits 0."""

import json
import os
import sys

print("ARGV " + json.dumps(sys.argv[1:]), flush=True)
print("ENV " + json.dumps({k: os.environ.get(k) for k in ("ROSMIND_TEST_A", "ROSMIND_TEST_B")}),
      flush=True)

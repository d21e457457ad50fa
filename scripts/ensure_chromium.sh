#!/bin/sh
# Installs Debian's chromium + chromium-driver for the browser teleop test, only when absent.
# Called by `make test`; needs root (or passwordless sudo) the first time.
set -e
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
exec sh "$(dirname "$0")/ensure_debs.sh" chromium chromium-driver

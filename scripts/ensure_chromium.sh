#!/bin/sh
# Installs Debian's chromium + chromium-driver for the browser teleop test, only when absent.
# Called by `make test`; needs root (or passwordless sudo) the first time.
set -e
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "ensure_chromium: /usr/bin/chromium missing and not root: the browser test will skip" >&2
        exit 0
    fi
fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver

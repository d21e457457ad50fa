#!/bin/sh
# Installs the Debian packages named as arguments that are not installed yet (e.g. libusb-1.0-0,
# which pyrealsense2 loads). Called by `make venv`; needs root (or passwordless sudo) the first time.
set -e
missing=""
for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "ensure_debs: missing$missing and not root: install them (apt-get install$missing)" >&2
        exit 0
    fi
fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing

#!/bin/sh
# Install Debian's chromium for the headless-browser test of the HTML report
# (tests/test_report.py; it skips with the reason when no chromium is found).
# Idempotent: does nothing when chromium is already on PATH. Needs root or sudo, and apt.
# Safe to run twice at once (two checkouts testing on one machine): the second waits for the
# first under a lock (flock), then finds chromium installed; apt itself waits for its own locks.
set -eu
if [ -z "${NASFORGE_BROWSER_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
    NASFORGE_BROWSER_LOCKED=1 exec flock "${TMPDIR:-/tmp}/nasforge-install-browser.lock" sh "$0" "$@"
fi
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser.sh: no apt-get here; install Chromium yourself (the report's browser test will skip)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install_browser.sh: not root and no sudo; the report's browser test will skip" >&2
        exit 0
    fi
fi
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null
chromium --version

#!/usr/bin/env bash
# Installs Debian's Chromium for tests/test_browser.py (headless JupyterLab test).
# We use the distribution's browser, never `playwright install`: CI reaches the package
# registries only, and Playwright drives this executable through executable_path.
# Idempotent: a quick no-op when /usr/bin/chromium is already there. Needs root (or sudo).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "install-browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: apt-get not found; install Chromium at /usr/bin/chromium by hand" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "install-browser: must run as root (or with sudo) to apt-get install chromium" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium
/usr/bin/chromium --version

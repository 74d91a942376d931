"""Helpers for tests/test_browser.py: a throw-away JupyterLab server and headless Chromium.

Chromium is Debian's (``.ci/install-browser.sh`` installs it at /usr/bin/chromium) and is
driven by Playwright through ``executable_path``: we never ``playwright install`` a
browser, since CI reaches the package registries only.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# The network is closed on our machines: without these flags Chromium waits on background
# fetches (component updates, sync, QUIC probes) and a headless start can stall. As root
# (CI containers) it refuses to start at all without --no-sandbox. Containers often mount a
# 64 MB /dev/shm, too small for Chromium's shared memory: --disable-dev-shm-usage uses /tmp.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)

# User settings of the throw-away JupyterLab (file name -> JSON), each one for a reason:
LAB_SETTINGS = {
    # Never write the notebook back behind the test's back (it is a temporary copy anyway).
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # Keep every cell in the DOM: with virtualised cells, outputs out of view are not drawn.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # No news or update checks: there is no network, and their toasts would cover the page.
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabServer:
    """A running ``jupyter lab`` started by :func:`start_lab`; stop it with :meth:`stop`."""

    process: subprocess.Popen
    port: int
    token: str
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """``path`` under the server, with the token, e.g. ``url("lab/tree/x.ipynb")``."""
        return f"{self.base_url}/{path.lstrip('/')}?token={self.token}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def wait_ready(self, timeout: float) -> float:
        """Poll ``/api/status`` until the server answers; return the seconds it took.

        Fails early, with the server's log, when the process exits before answering.
        """
        start = time.monotonic()
        while True:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(
                    f"jupyter lab exited with status {code} before answering; its log:\n"
                    f"{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=5) as reply:
                    if reply.status == 200:
                        return time.monotonic() - start
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() - start > timeout:
                raise TimeoutError(
                    f"jupyter lab did not answer on {self.base_url} within {timeout:.0f} s; "
                    f"its log:\n{self.log_tail()}"
                )
            time.sleep(0.5)

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server and its kernels down; escalate to SIGTERM, then SIGKILL.

        ``POST /api/shutdown`` lets the server shut its kernels down itself (they run in
        sessions of their own, so signalling the server's process group would miss them).
        """
        if self.process.poll() is None:
            request = urllib.request.Request(self.url("api/shutdown"), method="POST")
            try:
                urllib.request.urlopen(request, timeout=10).close()
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass  # not answering: the signals below still stop it
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None and self.process.poll() is None:
                try:  # the server was started in a session of its own: its group is its pid
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    pass  # it exited in the meantime
            try:
                self.process.wait(timeout=timeout)
                return
            except subprocess.TimeoutExpired:
                continue


def write_lab_settings(settings_dir: Path, settings: dict[str, dict] = LAB_SETTINGS) -> None:
    """Write JupyterLab user settings (``<plugin id>.jupyterlab-settings`` files)."""
    for plugin, values in settings.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))


def start_lab(root_dir: Path, home: Path, env: dict[str, str]) -> LabServer:
    """Start ``jupyter lab`` (this interpreter's) serving ``root_dir`` on a free port.

    ``home`` receives the server's log and its own Jupyter config, data, settings,
    workspace and runtime folders and IPython folder, so that neither a user's setup nor
    an earlier run leaks in, and nothing is written to the user's home. ``env``
    is the server's environment, which its kernels inherit. The caller must call
    :meth:`LabServer.stop`.
    """
    home.mkdir(parents=True, exist_ok=True)
    env = dict(env)
    for name, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),  # kernelspecs still come from sys.prefix
        ("IPYTHONDIR", "ipython"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"),
    ):
        env[name] = str(home / sub)
    write_lab_settings(home / "lab-settings")
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--allow-root",  # CI containers run as root
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # the port we chose, or a clear failure
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
    ]
    log_path = home / "jupyter-lab.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=root_dir, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    return LabServer(process=process, port=port, token=token, log_path=log_path)

"""
A JupyterLab server for one test session: started from the fresh venv on 127.0.0.1 at a free port, with a
token, a temporary root dir and private Jupyter/IPython dirs, and stopped with all its kernels at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .wheel_venv import LabVenv

START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 20
PORT_ATTEMPTS = 3

# Settings that keep JupyterLab from asking questions or reaching out to the internet during a test.
LAB_SETTINGS_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    "@jupyterlab/extensionmanager-extension:plugin": {"enabled": False},
}
SERVER_CONFIG = {
    "ServerApp": {"jpserver_extensions": {"jupyter_lsp": False}, "terminals_enabled": False},
    "LabApp": {"check_for_updates_class": "jupyterlab.NeverCheckForUpdate", "extension_manager": "readonly"},
    # Notebook 7 is served by the same server (its own pages under /notebooks/), with window.jupyterapp too
    "JupyterNotebookApp": {"expose_app_in_browser": True},
}


class LabServerError(RuntimeError):
    """The server did not start or stop as expected; the message ends with the server's log."""


@dataclass
class LabServer:
    """A running JupyterLab: `url` is its base URL, `root_dir` is where notebooks for it are written."""

    venv: LabVenv
    work_dir: Path
    root_dir: Path = field(init=False)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = None

    def __post_init__(self) -> None:
        self.root_dir = self.work_dir / "notebooks"
        self.log_path = self.work_dir / "jupyterlab.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lab_url(self, notebook_name: str) -> str:
        """Lab showing only this notebook: a workspace of its own, reset, so no earlier tab is restored."""
        workspace = notebook_name.removesuffix(".ipynb")
        return f"{self.url}/lab/workspaces/{workspace}/tree/{notebook_name}?reset&token={self.token}"

    def notebook_url(self, notebook_name: str) -> str:
        """Notebook 7 (the `notebook` package's single-document UI) showing this notebook."""
        return f"{self.url}/notebooks/{notebook_name}?token={self.token}"

    def url_for(self, ui: str, notebook_name: str) -> str:
        """The page showing `notebook_name` in `ui`: "lab" (JupyterLab) or "notebook" (Notebook 7)."""
        if ui == "lab":
            return self.lab_url(notebook_name)
        if ui == "notebook":
            return self.notebook_url(notebook_name)
        raise ValueError(f"unknown notebook UI {ui!r}: expected 'lab' or 'notebook'")

    def start(self) -> None:
        """Start the server and return once its REST API answers. Raises LabServerError."""
        self.root_dir.mkdir(parents=True, exist_ok=True)
        env = self._isolated_env()
        self._log_file = self.log_path.open("ab")
        for _ in range(PORT_ATTEMPTS):
            self.port = _free_loopback_port()
            self.process = subprocess.Popen(
                self._command(),
                cwd=self.root_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so the kernels can be stopped with it
            )
            if self._wait_until_ready():
                return
            self._stop_process()
            # Lost the race for the port (or failed otherwise): look at the log before trying another port.
            if "already in use" not in self.log_tail():
                break
        assert self.process is not None
        raise LabServerError(
            f"JupyterLab did not start (exit code {self.process.returncode}, waited up to {START_TIMEOUT_S}s)\n"
            f"{self.log_tail()}"
        )

    def api(self, method: str, path: str, timeout: float = 10) -> object:
        """Call the server's REST API with the token; returns decoded JSON (or None for an empty body)."""
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_sessions(self) -> None:
        """Shut down every notebook session (and so its kernel), so tests don't pile up kernels."""
        sessions = self.api("GET", "/api/sessions")
        for session in sessions if isinstance(sessions, list) else []:
            with contextlib.suppress(urllib.error.URLError):
                self.api("DELETE", f"/api/sessions/{session['id']}")

    def stop(self) -> list[str]:
        """Stop the server and its kernels. Returns what needed force (empty when shutdown was clean)."""
        try:
            return self._stop_process()
        finally:
            if self._log_file is not None:
                self._log_file.close()

    def _stop_process(self) -> list[str]:
        if self.process is None:
            return []
        forced: list[str] = []
        if self.process.poll() is not None:
            if _process_group_alive(self.process.pid):
                forced.append("server exited early; killed what was left in its process group")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
            return forced
        with contextlib.suppress(OSError, urllib.error.URLError):
            self.api("POST", "/api/shutdown")
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            forced.append("server ignored /api/shutdown; sent SIGTERM")
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                forced.append("server ignored SIGTERM; sent SIGKILL")
                self.process.kill()
                self.process.wait(timeout=5)
        # Kernels are in the server's process group; any left over are killed by that group's id.
        if _process_group_alive(self.process.pid):
            forced.append("processes left in the server's process group; killed them")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        return forced

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def _command(self) -> list[str]:
        return [
            str(self.venv.python), "-m", "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: run cells through Lab's own commands
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ]  # fmt: skip

    def _isolated_env(self) -> dict[str, str]:
        """Private Jupyter/IPython dirs, so neither the user's config nor kernelspecs leak into the test."""
        dirs = {name: self.work_dir / name for name in ("config", "data", "runtime", "ipython")}
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        (dirs["config"] / "jupyter_server_config.json").write_text(json.dumps(SERVER_CONFIG))
        settings_dir = self.venv.path / "share" / "jupyter" / "lab" / "settings"
        settings_dir.mkdir(parents=True, exist_ok=True)
        (settings_dir / "overrides.json").write_text(json.dumps(LAB_SETTINGS_OVERRIDES, indent=2))
        env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(
            PATH=f"{self.venv.bin_dir}{os.pathsep}{env.get('PATH', '')}",
            JUPYTER_CONFIG_DIR=str(dirs["config"]),
            JUPYTER_DATA_DIR=str(dirs["data"]),
            JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
            IPYTHONDIR=str(dirs["ipython"]),
            JUPYTER_PREFER_ENV_PATH="1",
            JUPYTER_PLATFORM_DIRS="1",
            PYTHONUNBUFFERED="1",
        )
        return env

    def _wait_until_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                self.api("GET", "/api/status", timeout=2)
                return True
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)  # nothing to wait on but the socket: poll it, bounded by the deadline
        return False


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

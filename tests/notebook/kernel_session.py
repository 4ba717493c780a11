"""
A real IPython kernel for the notebook tests, driven through jupyter_client: run cells, read their
outputs, and see every iopub message (with the time it arrived) including those sent by background
tasks after a cell finished.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KERNEL_NAME = "miniagents-test"


def write_kernel_spec(directory: Path) -> Path:
    """A kernel spec that runs ipykernel with this very interpreter (the project's venv)."""
    spec_dir = directory / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "MiniAgents tests",
        "language": "python",
        "interrupt_mode": "signal",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return directory


@dataclass
class IopubMessage:
    received_at: float  # time.monotonic() in the test process
    msg: dict[str, Any]

    @property
    def msg_type(self) -> str:
        return self.msg["header"]["msg_type"]

    @property
    def content(self) -> dict[str, Any]:
        return self.msg["content"]

    @property
    def parent_id(self) -> str | None:
        return self.msg.get("parent_header", {}).get("msg_id")


@dataclass
class CellResult:
    """What one executed cell produced while it ran (until the kernel went idle after it)."""

    reply: dict[str, Any]
    messages: list[IopubMessage] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0

    @property
    def status(self) -> str:
        return self.reply["status"]

    @property
    def error(self) -> str:
        """The error name and value, plus the traceback, if the cell failed."""
        if self.status == "ok":
            return ""
        return f"{self.reply.get('ename')}: {self.reply.get('evalue')}\n" + "\n".join(self.reply.get("traceback", []))

    @property
    def stdout(self) -> str:
        return "".join(m.content["text"] for m in self.messages if m.msg_type == "stream")

    @property
    def results(self) -> list[dict[str, Any]]:
        """The data bundles of execute_result and display_data outputs, in order."""
        return [m.content["data"] for m in self.messages if m.msg_type in ("execute_result", "display_data")]

    @property
    def result(self) -> dict[str, Any]:
        """The data bundle of the cell's value (its execute_result, or the display a reply makes of itself)."""
        for message in self.messages:
            if message.msg_type == "execute_result":
                return message.content["data"]
        for message in self.messages:
            if message.msg_type == "display_data":
                return message.content["data"]
        raise AssertionError(f"the cell has no value; outputs: {[m.msg_type for m in self.messages]}")


class KernelSession:
    """One running kernel; `run(code)` executes a cell and returns its CellResult."""

    def __init__(self, spec_dir: Path) -> None:
        spec_manager = KernelSpecManager(kernel_dirs=[str(spec_dir)])
        # IPC (Unix sockets in a private folder), not TCP: jupyter_client picks "free" TCP ports, closes
        # them, and the kernel binds them later; another process can take one meanwhile and kill the kernel
        self._socket_dir = tempfile.mkdtemp(prefix="miniagents-kernel-")
        self.manager = KernelManager(
            kernel_name=KERNEL_NAME,
            kernel_spec_manager=spec_manager,
            transport="ipc",
            ip=os.path.join(self._socket_dir, "kernel"),
        )
        self.manager.start_kernel(cwd=str(PROJECT_ROOT))
        self.client = self.manager.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        self.iopub: list[IopubMessage] = []
        self._arrivals: queue.Queue[IopubMessage] = queue.Queue()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_iopub, name="iopub-reader", daemon=True)
        self._reader.start()

    def _read_iopub(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.client.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            except Exception:  # the channel closed while shutting down
                return
            message = IopubMessage(time.monotonic(), msg)
            self.iopub.append(message)
            self._arrivals.put(message)

    def run(self, code: str, timeout: float = 30.0, allow_error: bool = False) -> CellResult:
        """Execute a cell and wait until the kernel is idle again; raises AssertionError if it failed."""
        started = time.monotonic()
        msg_id = self.client.execute(code)
        reply = self.client.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.client.get_shell_msg(timeout=timeout)
        self.wait_for(
            lambda m: m.parent_id == msg_id and m.msg_type == "status" and m.content["execution_state"] == "idle",
            timeout=timeout,
        )
        result = CellResult(reply["content"], [m for m in self.iopub if m.parent_id == msg_id], started)
        result.finished_at = next(
            m.received_at for m in result.messages if m.msg_type == "status" and m.content["execution_state"] == "idle"
        )
        if result.status != "ok" and not allow_error:
            raise AssertionError(f"cell failed:\n{code}\n{result.error}")
        return result

    def start(self, code: str) -> str:
        """Start executing a cell without waiting; returns its msg_id."""
        return self.client.execute(code)

    def wait_for(self, predicate: Callable[[IopubMessage], bool], timeout: float = 30.0) -> IopubMessage:
        """The first iopub message (already received or arriving within `timeout`) matching `predicate`."""
        for message in list(self.iopub):
            if predicate(message):
                return message
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching iopub message arrived in time")
            try:
                message = self._arrivals.get(timeout=remaining)
            except queue.Empty:
                continue
            if predicate(message):
                return message

    def wait_idle_after(self, msg_id: str, timeout: float = 30.0) -> None:
        self.wait_for(
            lambda m: m.parent_id == msg_id and m.msg_type == "status" and m.content["execution_state"] == "idle",
            timeout=timeout,
        )

    def value(self, expression: str, timeout: float = 30.0) -> Any:
        """Evaluate a Python expression in the kernel and return it (it must be JSON-serialisable)."""
        result = self.run(f"import json as _json\nprint(_json.dumps({expression}))", timeout=timeout)
        return json.loads(result.stdout.strip().splitlines()[-1])

    def comm_messages(self, comm_id: str) -> list[IopubMessage]:
        """Every comm_msg the kernel sent for this comm so far."""
        return [m for m in self.iopub if m.msg_type == "comm_msg" and m.content.get("comm_id") == comm_id]

    def send_to_widget(self, model_id: str, content: dict[str, Any], subshell_id: str | None = None) -> None:
        """
        Send a custom message to a widget's model, as its JavaScript would with `model.send(content)`; with
        `subshell_id`, through that kernel subshell, as JupyterLab 4.4+ sends widget messages.
        """
        data = {"method": "custom", "content": content}
        message = self.client.session.msg("comm_msg", {"comm_id": model_id, "data": data})
        if subshell_id is not None:
            message["header"]["subshell_id"] = subshell_id
        self.client.shell_channel.send(message)

    def create_subshell(self, timeout: float = 10.0) -> str:
        """Ask the kernel for a subshell (a thread of its own for shell messages); returns its id."""
        request = self.client.session.msg("create_subshell_request", {})
        self.client.control_channel.send(request)
        reply = self.client.control_channel.get_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != request["header"]["msg_id"]:
            reply = self.client.control_channel.get_msg(timeout=timeout)
        return reply["content"]["subshell_id"]

    def shutdown(self) -> None:
        self._stop.set()
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
        self._reader.join(timeout=5)
        shutil.rmtree(self._socket_dir, ignore_errors=True)

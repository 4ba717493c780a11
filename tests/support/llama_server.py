"""llama.cpp's OpenAI-compatible server (`llama_cpp.server`) serving SmolLM2-135M-Instruct, for the real-model tier.

    server = LlamaServer.start(interrupt_requests=True)   # a free 127.0.0.1 port; returns once it serves
    client = openai.AsyncOpenAI(api_key="local", base_url=server.openai_base_url)
    ...
    server.stop()

The server runs from its own venv (`.venv-llama`, made by `tests/support/prepare_llama_server.sh`, which `make test`
runs first). Kept small and fast: a 512-token context, one thread.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import openai

PROJECT = Path(__file__).resolve().parents[2]
LLAMA_VENV = Path(os.environ.get("MINIAGENTS_LLAMA_VENV", PROJECT / ".venv-llama"))
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m-instruct"
CONTEXT_TOKENS = 512
_READY_LINE = "Uvicorn running on"
_STARTUP_SECONDS = 60.0


def missing_setup() -> str | None:
    """Why the real-model tier cannot run here (None when it can)."""
    if not (LLAMA_VENV / ".installed").exists():
        return (
            f"the real-model tier is not built ({LLAMA_VENV}/.installed is missing): run `make llama-server` "
            f"(or `bash tests/support/prepare_llama_server.sh`); it needs a C/C++ compiler and cmake"
        )
    if not (LLAMA_VENV / "models" / MODEL_FILE).exists():
        return f"the model {MODEL_FILE} is missing from {LLAMA_VENV}/models: run `make llama-server`"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LlamaServer:
    """One running server process; its output is kept (`output()`) to explain a failure."""

    process: subprocess.Popen[str]
    port: int
    interrupt_requests: bool
    _lines: list[str] = field(default_factory=list)
    _ready: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def start(cls, interrupt_requests: bool = True) -> LlamaServer:
        """
        Start a server on a free port and return once it accepts requests.

        Raises RuntimeError (with the server's output) when it exits or is not ready within a minute.
        """
        problem = missing_setup()
        if problem is not None:
            raise RuntimeError(problem)
        port = _free_port()
        command = [
            str(LLAMA_VENV / "bin" / "python"),
            "-m",
            "llama_cpp.server",
            "--model",
            str(LLAMA_VENV / "models" / MODEL_FILE),
            "--model_alias",
            MODEL_ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(CONTEXT_TOKENS),
            "--n_threads",
            "1",
            "--n_threads_batch",
            "1",
            "--seed",
            "0",
            "--interrupt_requests",
            str(interrupt_requests),
            "--verbose",
            "False",
        ]
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        server = cls(process, port, interrupt_requests)
        threading.Thread(target=server._read_output, name=f"llama-server-{port}", daemon=True).start()
        if not server._ready.wait(_STARTUP_SECONDS) or process.poll() is not None:
            server.stop()
            raise RuntimeError(f"llama.cpp server did not start on port {port}:\n{server.output()}")
        return server

    def _read_output(self) -> None:
        """Drain the server's output (so it never blocks on a full pipe) and note when it is ready."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.append(line)
            if _READY_LINE in line:
                self._ready.set()
        self._ready.set()  # it exited: whoever waits must look at the process

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def output(self) -> str:
        """What the server printed so far (the last 200 lines)."""
        return "".join(self._lines[-200:])

    def stop(self) -> None:
        """Terminate the process and wait for it (killed if it does not end within 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class LlamaClients:
    """Makes `openai` clients pointed at a llama.cpp server; closes them in the test's event loop."""

    def __init__(self) -> None:
        self.made: list[openai.AsyncOpenAI] = []

    def __call__(self, server: LlamaServer, **kwargs: object) -> openai.AsyncOpenAI:
        options: dict[str, object] = {"timeout": 30.0, "max_retries": 0, **kwargs}
        client = openai.AsyncOpenAI(api_key="local-no-key", base_url=server.openai_base_url, **options)  # type: ignore[arg-type]
        self.made.append(client)
        return client

    async def aclose(self) -> None:
        for client in self.made:
            await client.close()

"""
Re-record the LLM responses that notebooks 06 and 09 replay, then re-run those notebooks and save them.

No key and no network are involved, and no real model: the notebooks' requests go to the loopback server of
the test suite (`tests/support/llm_wire_server.py`, which speaks the OpenAI and Anthropic wire protocols through
the real SDKs), and it answers with the replies scripted in `scripted_replies.py`, written by hand. Each notebook
runs unchanged except for a first cell, added only while recording, that points its SDK clients at that server
and switches its `LLMResponseCache` to `mode="auto"` on an emptied folder (so each distinct request is recorded
once, the first time it is made). Afterwards every notebook is executed again in replay
mode (as the test suite runs it) and saved with its outputs.

    .venv/bin/python notebooks/recordings/record_llm_responses.py              # notebooks 06 and 09
    .venv/bin/python notebooks/recordings/record_llm_responses.py 09_self_dev  # one notebook

Run it after changing a request in one of these notebooks, or (for 09) after changing the public API outline
of `miniagents/promising`, which the self-development notebook sends to its model. To record from the real
APIs instead, set OPENAI_API_KEY (and ANTHROPIC_API_KEY), and run the notebook with `mode="record"` and without
the `base_url` of its clients.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1]
PROJECT = NOTEBOOKS.parent
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scripted_replies import scripted_reply  # noqa: E402

from tests.support.llm_wire_server import Fault, LLMWireServer, Reply  # noqa: E402

RECORDED_NOTEBOOKS = ("06_openai_anthropic", "09_self_dev")

# Runs first in the kernel while recording: the SDK clients the notebook makes talk to the stand-in server, and
# its response cache for `recordings/<notebook>` records what it does not have yet instead of only replaying.
_RECORDING_CELL = """\
from pathlib import Path as _Path

import anthropic as _anthropic
import openai as _openai
from miniagents.ext.llm import llm_cache as _llm_cache


def _redirect(sdk_class, base_url):
    original = sdk_class.__init__

    def __init__(self, *args, **kwargs):
        kwargs["base_url"] = base_url
        original(self, *args, **kwargs)

    sdk_class.__init__ = __init__


_redirect(_openai.AsyncOpenAI, {openai_url!r})
_redirect(_anthropic.AsyncAnthropic, {anthropic_url!r})
_original_cache_init = _llm_cache.LLMResponseCache.__init__


def _cache_init(self, folder, mode=None):
    recording = _Path(folder).resolve() == _Path({folder!r})
    _original_cache_init(self, folder, mode="auto" if recording else mode)


_llm_cache.LLMResponseCache.__init__ = _cache_init
"""


def _tokens(text: str) -> list[str]:
    """Word-sized chunks (each with the whitespace before it), as a provider streams them."""
    return re.findall(r"\s*\S+", text)


class ScriptedServer(LLMWireServer):
    """The wire server, answering each request with its scripted reply (or an HTTP 404 when it has none)."""

    def __init__(self) -> None:
        super().__init__()
        take = self._state.take

        def scripted_take(body: Any) -> tuple[Any, int]:
            _, seq = take(body)  # keeps the server's numbering of responses
            dialect = "anthropic" if str(body.get("model", "")).startswith("claude") else "openai"
            text = scripted_reply(dialect, body)
            if text is None:
                return Fault.http_status(404, message="no scripted reply for this request (by design)"), seq
            return Reply(tokens=_tokens(text)), seq

        self._state.take = scripted_take  # type: ignore[method-assign]


def record(name: str, server: ScriptedServer) -> None:
    folder = NOTEBOOKS / "recordings" / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json"):
        old.unlink()
    path = NOTEBOOKS / f"{name}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    recording_cell = _RECORDING_CELL.format(
        openai_url=server.openai_base_url, anthropic_url=server.anthropic_base_url, folder=str(folder)
    )
    notebook.cells.insert(0, nbformat.v4.new_code_cell(recording_cell))
    # errors are allowed here: the cells that show a missing recording fail differently while recording
    NotebookClient(notebook, timeout=120, allow_errors=True, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    print(f"{name}: {len(list(folder.glob('*.json')))} recordings in {folder.relative_to(PROJECT)}")


def replay_and_save(name: str) -> None:
    path = NOTEBOOKS / f"{name}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    nbformat.write(notebook, path)
    print(f"{name}: replayed and saved with its outputs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help=f"default: {' '.join(RECORDED_NOTEBOOKS)}")
    names = parser.parse_args().notebooks or list(RECORDED_NOTEBOOKS)
    unknown = set(names) - set(RECORDED_NOTEBOOKS)
    if unknown:
        parser.error(f"not a notebook with recordings: {', '.join(sorted(unknown))}")
    with ScriptedServer() as server:
        for name in names:
            record(name, server)
    for name in names:
        replay_and_save(name)


if __name__ == "__main__":
    main()

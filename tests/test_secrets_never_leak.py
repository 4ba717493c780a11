"""
An API key never reaches any artifact of a run (issue 6, acceptance 4): not the logs, not the persisted
messages, not the LLM call logs or recordings, not the notebook widgets' state.

One run uses a fake key the way users do (the SDKs' environment variables), against the loopback
wire-protocol server: streamed and non-streamed calls of both providers and a provider error. Then every
artifact is read back and searched for the key. (Text a user types is stored as typed: a key pasted into
a prompt is the user's content; the LLM call logs and recordings scrub even that, see test_llm_logging.)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from miniagents import MiniAgents
from miniagents.ext.llm.anthropic import create_anthropic_agent
from miniagents.ext.llm.llm_cache import LLMResponseCache
from miniagents.ext.llm.llm_log import LLMLogFolder
from miniagents.ext.llm.openai import create_openai_agent
from miniagents.ext.sqlite_store import SQLiteMessageStore
from miniagents.notebook import MessageTree
from miniagents.notebook.stream_widget import MessageStreamWidget
from tests.support.llm_agent_testing import assert_no_task_left, within
from tests.support.llm_wire_server import Fault, LLMWireServer, Reply

FAKE_KEY = "sk-fake-5e1b7c2d9a40-do-not-leak"


def _artifact_texts(folder: Path) -> dict[str, str]:
    """Every file below `folder`, read as text (bytes decoded leniently, so nothing can hide)."""
    return {
        str(path.relative_to(folder)): path.read_bytes().decode("utf-8", "replace")
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


async def test_api_key_appears_in_no_artifact_when_run_uses_a_fake_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with LLMWireServer() as server:
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
        server.enqueue(
            Reply(tokens=["streamed ", "answer"]),
            Reply(tokens=["whole ", "answer"]),
            Reply(tokens=["claude ", "answer"]),
            Fault.http_status(400, message="upstream broke"),  # not retried by the SDKs,
        )
        (tmp_path / "store").mkdir()
        store = SQLiteMessageStore(tmp_path / "store" / "messages.db")
        logs = LLMLogFolder(tmp_path / "llm-logs")
        recordings = LLMResponseCache(tmp_path / "recordings", mode="record")
        gpt = create_openai_agent(llm_logger=logs, response_cache=recordings)
        claude = create_anthropic_agent(llm_logger=logs, response_cache=recordings)

        async with MiniAgents(on_persist_message=store.on_persist_message):
            tree = MessageTree()
            streamed = gpt.inquire("hello")
            stream_widget = MessageStreamWidget(streamed)
            await within(streamed.aresolve_messages())
            await within(gpt.inquire("answer in one piece", stream=False).aresolve_messages())
            await within(claude.inquire("hi claude").aresolve_messages())
            with pytest.raises(Exception, match="upstream broke"):
                await within(gpt.inquire("this call fails").aresolve_messages())
            await within(stream_widget.adone())
            await within(tree.aquiet())
        await within(store.aflush())
        store.close()
        await assert_no_task_left()
        assert len(server.requests) == 4
        assert all(request.api_key == FAKE_KEY for request in server.requests)  # the key was really used

    artifacts = _artifact_texts(tmp_path)
    assert any(name.startswith("store") for name in artifacts)
    assert any(name.startswith("llm-logs") for name in artifacts)
    assert any(name.startswith("recordings") for name in artifacts)
    artifacts["python logging"] = caplog.text + "".join(
        f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records
    )
    artifacts["message tree state"] = json.dumps(tree.state) + tree.to_text() + tree.to_html()
    artifacts["stream widget state"] = json.dumps(stream_widget.state) + stream_widget.text

    leaks = [name for name, text in artifacts.items() if FAKE_KEY in text]
    assert leaks == []
    assert "upstream broke" in artifacts["python logging"]  # the failing call was logged, just not the key

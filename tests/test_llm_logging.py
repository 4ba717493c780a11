"""Opt-in LLM call logging (LLMLogFolder): one readable markdown file per call, never an API key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from miniagents import MiniAgents
from miniagents.ext.llm import LLMLogFolder, LLMResponseCache, SystemMessage
from miniagents.ext.llm.anthropic import create_anthropic_agent
from miniagents.ext.llm.offline import create_offline_agent
from miniagents.ext.llm.openai import create_openai_agent
from tests.support.llm_agent_testing import API_KEY, SDKClients, aread_replies, asingle_reply, within
from tests.support.llm_wire_server import Fault, LLMWireServer, Reply


def logged_files(folder: Path) -> list[str]:
    return [path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.md"))]


def file_names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def grep(text: str, folder: Path) -> str:
    """What `grep -r` finds of `text` in `folder` (empty when nothing)."""
    found = subprocess.run(["grep", "-r", text, str(folder)], capture_output=True, text=True, check=False)
    assert found.returncode in (0, 1), found.stderr
    return found.stdout


async def test_each_call_is_a_markdown_file_with_agent_model_parameters_prompt_and_response(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path
) -> None:
    server.enqueue(Reply(tokens=["Hel", "lo"]), Reply(tokens=["Bye"]))
    agent = create_openai_agent(clients.openai(), alias="GREETER", llm_logger=LLMLogFolder(tmp_path))
    async with MiniAgents():
        await asingle_reply(agent.inquire([SystemMessage("Be kind."), "Say hello"], temperature=0.3))
        await asingle_reply(agent.inquire("Say bye", model="gpt-4o"))
    first, second = logged_files(tmp_path)
    assert first.startswith("# GREETER → gpt-4o-mini\n")
    for expected in (
        "- provider: openai",
        "- status: ok",
        '"temperature": 0.3',
        "### system",
        "Be kind.",
        "### user",
        "Say hello",
        "## Response",
        "Hello",
        '"finish_reason": "stop"',
    ):
        assert expected in first
    assert "# GREETER → gpt-4o\n" in second and "Say bye" in second and "Bye" in second
    assert all(name.endswith("_GREETER.md") for name in file_names(tmp_path))


async def test_api_keys_are_never_written(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
    logs, cache = tmp_path / "logs", tmp_path / "cache"
    openai_agent = create_openai_agent(
        clients.openai(), llm_logger=LLMLogFolder(logs), response_cache=LLMResponseCache(cache, mode="record")
    )
    anthropic_agent = create_anthropic_agent(
        llm_logger=LLMLogFolder(logs), response_cache=LLMResponseCache(cache, mode="record")
    )
    async with MiniAgents():
        await asingle_reply(openai_agent.inquire("hi", extra_headers={"X-Api-Key": API_KEY}))
        await asingle_reply(anthropic_agent.inquire(f"my key is {API_KEY}"))  # even if it gets into a prompt
    assert len(file_names(logs)) == 2 and len(file_names(cache)) == 2
    assert grep(API_KEY, tmp_path) == ""
    assert "my key is ***" in "".join(logged_files(logs))


async def test_a_failed_call_is_logged_with_its_error_and_partial_response(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path
) -> None:
    server.enqueue(Fault.drop_after(["half ", "way"]))
    agent = create_openai_agent(clients.openai(max_retries=0), llm_logger=LLMLogFolder(tmp_path))
    async with MiniAgents():
        _, error = await within(aread_replies(agent.inquire("hi")))
    (log,) = logged_files(tmp_path)
    assert error is not None and f"- status: failed: {type(error).__name__}" in log and "half way" in log


async def test_a_replayed_call_says_so(server: LLMWireServer, clients: SDKClients, tmp_path: Path) -> None:
    cache = LLMResponseCache(tmp_path / "cache", mode="auto")
    agent = create_anthropic_agent(clients.anthropic(), llm_logger=LLMLogFolder(tmp_path), response_cache=cache)
    async with MiniAgents():
        await asingle_reply(agent.inquire("hi"))
        await asingle_reply(agent.inquire("hi"))
    first, second = logged_files(tmp_path)
    assert "- source: provider" in first and "- source: replayed from the response cache" in second
    assert "- provider: anthropic" in first and '"max_tokens": 4096' in first


async def test_fences_in_the_text_cannot_break_out_of_the_log(tmp_path: Path) -> None:
    agent = create_offline_agent(lambda _: "```python\nprint(1)\n```", llm_logger=LLMLogFolder(tmp_path))
    async with MiniAgents():
        await asingle_reply(agent.inquire("show ``` code"))
    (log,) = logged_files(tmp_path)
    assert "````text\nshow ``` code\n````" in log and "````text\n```python\nprint(1)\n```\n````" in log


async def test_logging_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIAGENTS_LLM_LOG_DIR", str(tmp_path))
    async with MiniAgents():
        await asingle_reply(create_offline_agent().inquire("hi"))
        await asingle_reply(create_offline_agent().inquire("again"))
    assert len(logged_files(tmp_path)) == 2


async def test_logging_is_off_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINIAGENTS_LLM_LOG_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    async with MiniAgents():
        await asingle_reply(create_offline_agent().inquire("hi"))
    assert file_names(tmp_path) == []

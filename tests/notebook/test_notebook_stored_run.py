"""A run persisted to SQLite, rendered by the notebook layer as the same tree the live view shows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from html_inspection import assert_inert

from miniagents import InteractionContext, MiniAgents, miniagent
from miniagents.ext.sqlite_store import SQLiteMessageStore
from miniagents.notebook import MessageTree, StoredRunTree


@miniagent
async def helper(ctx: InteractionContext, n: int) -> None:
    if n == 1:
        raise ValueError("helper 1 <script>window.__pwned=1</script> failed")
    ctx.reply(f"help {n}")


@miniagent
async def lead(ctx: InteractionContext) -> None:
    ctx.reply([helper.inquire(ctx.messages, n=n) for n in range(2)])


async def _run(store: SQLiteMessageStore) -> MessageTree:
    async with MiniAgents(on_persist_message=store.on_persist_message):
        tree = MessageTree()
        with pytest.raises(ValueError, match="helper 1"):
            await asyncio.wait_for(lead.inquire("go").aresolve_messages(), 10)
        await asyncio.wait_for(tree.aquiet(), 10)
    await asyncio.wait_for(store.aflush(), 10)
    return tree


async def test_stored_run_renders_the_same_tree_as_the_live_view_when_loaded_back(tmp_path: Path) -> None:
    store = SQLiteMessageStore(tmp_path / "runs.db")
    live = await _run(store)
    (run,) = store.runs()

    stored = StoredRunTree(store.load_run(run.id))
    store.close()

    # the error is on HELPER; LEAD's reply shows in full on HELPER, where it was produced
    assert stored.to_text().splitlines()[0].startswith("LEAD [finished · 1 failed inside] in: 1, replies: 1")
    assert stored.to_text().splitlines()[1].startswith("  ↳ forwarded from HELPER #")
    assert [line.strip().split(" [")[0] for line in _call_lines(stored.to_text())] == ["LEAD", "HELPER", "HELPER"]
    assert "HELPER [failed: ValueError: helper 1" in stored.to_text()
    # same calls, nesting and statuses as the live tree of the same run (the live one also lists the error
    # among LEAD's replies, and counts streamed tokens, which are not stored)
    assert [line.split(" in: ")[0] for line in _call_lines(stored.to_text())] == [
        line.split(" in: ")[0] for line in _call_lines(live.to_text())
    ]
    assert 'data-status="failed"' in stored.to_html()
    assert_inert(stored.to_html())
    assert stored.to_mermaid().startswith("flowchart TD")
    bundle = stored._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", "text/vnd.mermaid"}


def test_stored_run_renders_without_an_active_context(tmp_path: Path) -> None:
    store = SQLiteMessageStore(tmp_path / "runs.db")
    asyncio.run(_run(store))
    (run,) = store.runs()
    graph = store.load_run(run.id)
    store.close()

    assert "LEAD [finished · 1 failed inside]" in StoredRunTree(graph).to_text()


def _call_lines(text: str) -> list[str]:
    """The lines of a tree's text form that show calls (not references, folded counts or the totals)."""
    return [line for line in text.splitlines()[:-1] if not line.strip().startswith(("↳", "…"))]

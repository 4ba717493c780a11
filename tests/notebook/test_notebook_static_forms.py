"""The static forms widgets leave in saved notebooks (SPEC 5.5, 5.7): their own stylesheet, and diagrams readable in
any theme."""

from __future__ import annotations

import asyncio

from html_inspection import assert_inert, without_own_stylesheet

from miniagents import InteractionContext, MiniAgents, miniagent
from miniagents.ext.llm.offline import create_offline_agent
from miniagents.notebook import MessageTree
from miniagents.notebook.assets import static_stylesheet
from miniagents.notebook.rendering import static_html


def test_static_html_starts_with_the_compacted_stylesheet_of_messages() -> None:
    html = static_html("miniagents-stream", "<p>x</p>", status="done")

    assert (
        html == f'<style>{static_stylesheet()}</style><div class="miniagents-stream" data-status="done"><p>x</p></div>'
    )
    assert ".miniagents-message{" in static_stylesheet()
    assert "/*" not in static_stylesheet() and "\n" not in static_stylesheet()
    assert "miniagents-chat-input" not in static_stylesheet()  # the live controls' styles stay out


def test_static_html_escapes_its_data_attributes() -> None:
    html = without_own_stylesheet(static_html("miniagents-chat", "", phase='"><script>alert(1)</script>'))

    assert_inert(html)
    assert 'data-phase="&quot;&gt;&lt;script&gt;' in html


async def test_mermaid_edges_are_drawn_thick_enough_for_any_theme() -> None:
    llm = create_offline_agent(lambda messages: "notes")

    @miniagent
    async def boss(ctx: InteractionContext) -> None:
        ctx.reply(llm.inquire("go"))

    async with MiniAgents():
        tree = MessageTree()
        await boss.inquire().aresolve_messages()
        await asyncio.wait_for(tree.aquiet(), 10)

        lines = str(tree.to_mermaid()).splitlines()
        assert lines[-3:] == ["    c1 --> c2", "    c2 -.->|forwarded| c1", "    linkStyle default stroke-width:2px"]

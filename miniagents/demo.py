"""
The flagship demo (`python -m miniagents.demo`): a small research team of agents, offline.

An EDITOR asks three RESEARCHERs in parallel, and a WRITER drafts from their notes while they are
still being streamed. Every model is the offline stand-in LLM (deterministic, NOT a real model),
so this runs anywhere, with no key and no network. At the end it prints who called whom, built from
the interaction graph (AgentCallNode / AgentReplyNode) that the persistence hook received.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from miniagents import InteractionContext, Message, MiniAgents, miniagent
from miniagents.ext.llm.offline import create_offline_agent
from miniagents.miniagents import AgentCallNode, AgentReplyNode

ANGLES = ("history", "how it works", "open questions")


def _research_notes(messages: tuple[Message, ...]) -> str:
    topic, angle = str(messages[-1]).split(" | ")
    return (
        f"Notes on the {angle} of {topic}: three observations, each checked twice, "
        f"and one open thread worth a follow-up."
    )


def _draft(messages: tuple[Message, ...]) -> str:
    return (
        f"Draft built from {len(messages)} sets of notes. "
        "The researchers agree on the main points; the open threads become the next steps."
    )


def build_team(token_delay: float) -> Any:
    researcher_llm = create_offline_agent(_research_notes, token_delay=token_delay, alias="RESEARCHER_LLM")
    writer_llm = create_offline_agent(_draft, token_delay=token_delay, alias="WRITER_LLM")

    @miniagent
    async def researcher(ctx: InteractionContext, angle: str) -> None:
        """Researches one angle of a topic."""
        topic = (await ctx.messages.aresolve_messages())[-1].text
        ctx.reply(researcher_llm.inquire(f"{topic} | {angle}"))

    @miniagent
    async def writer(ctx: InteractionContext) -> None:
        """Drafts a text from the notes it receives."""
        ctx.reply(writer_llm.inquire(ctx.messages))

    @miniagent
    async def editor(ctx: InteractionContext) -> None:
        """Splits the work: researchers in parallel, then a writer on their (still streaming) notes."""
        notes = [
            researcher.fork(alias=f"RESEARCHER_{i + 1}").inquire(ctx.messages, angle=angle)
            for i, angle in enumerate(ANGLES)
        ]
        ctx.reply(notes)
        ctx.reply(writer.inquire(notes))  # passed on without waiting: the writer starts right away

    return editor


async def amain(topic: str, token_delay: float, out: Any = sys.stdout) -> None:
    nodes: list[Message] = []

    async def collect_graph(_: Any, message: Message) -> None:
        if isinstance(message, (AgentCallNode, AgentReplyNode)):
            nodes.append(message)

    editor = build_team(token_delay)
    started = time.perf_counter()
    async with MiniAgents(on_persist_message=collect_graph):
        async for message_promise in editor.inquire(topic):
            metadata = message_promise.preliminary_metadata
            sender = getattr(metadata, "agent_alias", None) or "?"
            out.write(f"\n── {sender} ({getattr(metadata, 'model', '?')}) ──\n")
            async for token in message_promise:
                out.write(token)
                out.flush()
            out.write("\n")
        elapsed = time.perf_counter() - started
    out.write(f"\nDone in {elapsed:.2f} s (agents ran in parallel; the stand-in LLM paces its tokens).\n")
    out.write("\nWho called whom (from the interaction graph):\n")
    out.write(render_call_tree(nodes))


def render_call_tree(nodes: list[Message]) -> str:
    """A plain-text tree of agent calls from AgentCallNode / AgentReplyNode messages."""
    replies = {node.agent_call.call_id: node for node in nodes if isinstance(node, AgentReplyNode)}
    children: dict[int | None, list[AgentCallNode]] = {}
    for reply in replies.values():
        children.setdefault(reply.agent_call.parent_call_id, []).append(reply.agent_call)
    lines: list[str] = []

    def walk(parent_id: int | None, depth: int) -> None:
        for call in sorted(children.get(parent_id, []), key=lambda c: c.call_id or 0):
            reply = replies[call.call_id]
            count = len(reply.replies)
            status = f"failed: {reply.error}" if reply.error else f"{count} repl{'y' if count == 1 else 'ies'}"
            lines.append(
                f"{'  ' * depth}└─ {call.agent_alias}  ({len(call.messages)} in, {status})  #{call.hash_key[:8]}"
            )
            walk(call.call_id, depth + 1)

    walk(None, 0)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("topic", nargs="?", default="immutable messages in multi-agent systems")
    parser.add_argument("--token-delay", type=float, default=0.03, help="seconds between stand-in tokens")
    args = parser.parse_args(argv)
    MiniAgents().run(amain(args.topic, args.token_delay))


if __name__ == "__main__":
    main()

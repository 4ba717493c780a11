"""
Script for the KeyboardInterrupt test: `MiniAgents().run()` interrupted by SIGINT, `--iterations` times.

Each iteration starts agents that stream tokens forever, prints `ready <i>` once every one of them is
streaming, and waits for SIGINT (sent by the test). It then prints
`interrupted <i> <cleanups> <sequence endings> <token stream endings>`: how many agent functions saw their
cancellation, and how the partial reply sequences and token streams end.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from collections.abc import AsyncIterator
from typing import Any

from miniagents import InteractionContext, Message, MessagePromise, MessageSequencePromise, MiniAgents, miniagent

AGENTS = 5


async def aending(stream: MessageSequencePromise | MessagePromise) -> str:
    """How a (finished) stream ends: the name of the error it raises, or `end`."""
    try:
        async for _ in stream:
            pass
    except Exception as exc:
        return type(exc).__name__
    return "end"


async def tokens_forever(_: dict[str, Any]) -> AsyncIterator[str]:
    for number in itertools.count():
        yield f"token {number} "
        await asyncio.sleep(0.001)


def run_once(iteration: int) -> None:
    """One interrupted run; prints `ready` and then `interrupted`."""
    cleanups: list[int] = []
    sequences: list[MessageSequencePromise] = []
    streams: list[MessagePromise] = []

    @miniagent
    async def streamer(ctx: InteractionContext, number: int) -> None:
        try:
            ctx.reply(Message.promise(message_token_streamer=tokens_forever))
            await asyncio.Event().wait()
        finally:
            cleanups.append(number)

    async def amain() -> None:
        sequences.extend(streamer.inquire(number=number) for number in range(AGENTS))
        for sequence in sequences:
            async for message_promise in sequence:
                streams.append(message_promise)
                async for _ in message_promise:
                    break  # this agent is streaming
                break
        print(f"ready {iteration}", flush=True)
        await asyncio.Event().wait()

    try:
        MiniAgents().run(amain())
    except KeyboardInterrupt:
        sequence_endings = {asyncio.run(aending(sequence)) for sequence in sequences}
        stream_endings = {asyncio.run(aending(stream)) for stream in streams}
        print(
            f"interrupted {iteration} {len(cleanups)} {','.join(sorted(sequence_endings))} "
            f"{','.join(sorted(stream_endings))}",
            flush=True,
        )
    else:
        sys.exit("run() returned without KeyboardInterrupt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=1)
    for iteration in range(parser.parse_args().iterations):
        run_once(iteration)


if __name__ == "__main__":
    main()

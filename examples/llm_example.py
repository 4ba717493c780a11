"""
LLM agents: ask OpenAI and Anthropic models, streaming their replies token by token.

A provider is used for real when its key is set (OPENAI_API_KEY, ANTHROPIC_API_KEY); otherwise the
offline stand-in LLM (NOT a real model) answers in its place, so the example runs anywhere.
"""

import os

from miniagents import MiniAgent, MiniAgents


def create_llm_agent(provider: str) -> MiniAgent:
    """The real agent of `provider` ("openai" or "anthropic") when its key is set, else the stand-in."""
    if provider == "openai" and os.environ.get("OPENAI_API_KEY"):
        from miniagents.ext.llm.openai import create_openai_agent

        return create_openai_agent()
    if provider == "anthropic" and os.environ.get("ANTHROPIC_API_KEY"):
        from miniagents.ext.llm.anthropic import create_anthropic_agent

        return create_anthropic_agent()

    from miniagents.ext.llm.offline import create_offline_agent

    print(f"No {provider.upper()} key set: the offline stand-in LLM (NOT a real model) answers instead.")
    return create_offline_agent(token_delay=0.02, alias=f"{provider.upper()}_STAND_IN")


async def aprint_reply(agent: MiniAgent, question: str) -> None:
    """Ask `agent` and print its reply as it streams."""
    print(f"\nUSER: {question}")
    async for message_promise in agent.inquire(question):
        print(f"{message_promise.preliminary_metadata.agent_alias}: ", end="", flush=True)
        async for token in message_promise:
            print(token, end="", flush=True)
        print()


async def amain() -> None:
    await aprint_reply(create_llm_agent("openai"), "Hello, OpenAI!")
    await aprint_reply(create_llm_agent("anthropic"), "Hello, Anthropic!")


if __name__ == "__main__":
    MiniAgents().run(amain())

"""
A console chat between you and an LLM, logged to CHAT.md (run it again to continue the chat).

With OPENAI_API_KEY set it talks to OpenAI; without it, to the offline stand-in LLM (NOT a real
model), so it runs anywhere.
"""

import os

from miniagents.ext.chat_history_md import ChatHistoryMD
from miniagents.ext.console_user_agent import create_console_user_agent
from miniagents.miniagents import MiniAgent, MiniAgents
from miniagents.utils import adialog_loop


def create_assistant_agent() -> MiniAgent:
    """The OpenAI agent when OPENAI_API_KEY is set, else the offline stand-in LLM."""
    if os.environ.get("OPENAI_API_KEY"):
        from miniagents.ext.llm.openai import create_openai_agent

        return create_openai_agent(model="gpt-4o-2024-05-13")

    from miniagents.ext.llm.offline import create_offline_agent

    print("OPENAI_API_KEY is not set: chatting with the offline stand-in LLM (NOT a real model).")
    return create_offline_agent(token_delay=0.03)


async def amain() -> None:
    chat_history = ChatHistoryMD("CHAT.md")
    try:
        await adialog_loop(
            user_agent=create_console_user_agent(chat_history=chat_history),
            assistant_agent=create_assistant_agent(),
        )
    except KeyboardInterrupt:
        print()


if __name__ == "__main__":
    MiniAgents().run(amain())

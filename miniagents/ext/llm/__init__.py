"""LLM agents. The provider modules import their SDKs lazily, so importing this package is cheap."""

from miniagents.ext.llm.llm_common import AssistantMessage, LLMAgent, SystemMessage, UserMessage

__all__ = ["AssistantMessage", "LLMAgent", "SystemMessage", "UserMessage"]

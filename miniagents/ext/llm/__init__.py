"""LLM agents. The provider modules import their SDKs lazily, so importing this package is cheap."""

from miniagents.ext.llm.llm_cache import LLMCacheMissError, LLMResponseCache
from miniagents.ext.llm.llm_common import (
    AssistantMessage,
    LLMAgent,
    LLMIncompleteReplyError,
    LLMRequest,
    SystemMessage,
    UserMessage,
)
from miniagents.ext.llm.llm_log import LLMLogFolder

__all__ = [
    "AssistantMessage",
    "LLMAgent",
    "LLMCacheMissError",
    "LLMIncompleteReplyError",
    "LLMLogFolder",
    "LLMRequest",
    "LLMResponseCache",
    "SystemMessage",
    "UserMessage",
]

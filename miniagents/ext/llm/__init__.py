"""LLM agents. The provider modules import their SDKs lazily, so importing this package is cheap."""

from miniagents.ext.llm.llm_cache import LLMCacheMissError, LLMResponseCache
from miniagents.ext.llm.llm_common import LLMAgent, LLMIncompleteReplyError, LLMRequest
from miniagents.ext.llm.llm_log import LLMLogFolder
from miniagents.ext.llm.llm_messages import (
    AssistantMessage,
    RetryPromptMessage,
    SystemMessage,
    ToolResultMessage,
    UserMessage,
)
from miniagents.ext.llm.structured import OutputValidationError
from miniagents.ext.llm.tools import MaxToolRoundsError, Tool, ToolCallError

__all__ = [
    "AssistantMessage",
    "LLMAgent",
    "LLMCacheMissError",
    "LLMIncompleteReplyError",
    "LLMLogFolder",
    "LLMRequest",
    "LLMResponseCache",
    "MaxToolRoundsError",
    "OutputValidationError",
    "RetryPromptMessage",
    "SystemMessage",
    "Tool",
    "ToolCallError",
    "ToolResultMessage",
    "UserMessage",
]

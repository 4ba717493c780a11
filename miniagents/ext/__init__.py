"""Extensions on top of the core: LLM agents, chat histories, user agents."""

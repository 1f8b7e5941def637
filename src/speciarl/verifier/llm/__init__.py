"""The LLM judge's parts: the chat-completions transport and the judging protocol."""

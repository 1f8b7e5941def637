"""Judges: the taxonomy judge, LLM judges (HTTP, local), the tiered judge, the verdict cache."""

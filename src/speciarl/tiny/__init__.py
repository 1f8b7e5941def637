"""The embedded default: a 0.75M-parameter Qwen2.5-VL built by code, warm-started on the synthetic shapes.

It sits above ``data`` (its tokenizer and warm start read the synthetic task) and ``policy``.
"""

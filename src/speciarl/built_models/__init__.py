"""Models built by code, nothing downloaded: the 0.75M-parameter default and Qwen2.5-VL at real widths.

``tiny``: the embedded default, a tiny Qwen2.5-VL whose tokenizer is trained on the synthetic
task and which ``warm_start`` teaches the synthetic shapes (``tiny_loading.tiny_policy`` is its
``model=`` target). ``random_qwen``: the published Qwen2.5-VL-3B / -7B architectures with random
weights and a tokenizer with the real special tokens, to rehearse a run at full width on any
machine. Both read the synthetic task, so this package sits above ``data`` and ``policy``.
"""

"""Real things the judge tests run against: a tiny causal LM built by code, a redis-server process."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from speciarl.core.categories import Category
from speciarl.verifier.judge_prompt import BATCH_SYSTEM_PROMPT, SYSTEM_PROMPT, pair_message

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_judge_lm(
    folder: Path, seed: int = 0, hidden_size: int = 32, intermediate_size: int = 64
) -> Path:
    """A randomly initialised ~100k-parameter Qwen2 causal LM with a BPE trained on the judge prompt.

    4 attention heads: head dim = hidden_size / 4 (vLLM's CPU attention needs >= 32: hidden_size=128).
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [SYSTEM_PROMPT, BATCH_SYSTEM_PROMPT, *(c.value for c in Category)]
    corpus += [pair_message("golden-winged warbler", p) for p in ("warbler", "bird", "blue jay", "none")]
    core.train_from_iterator(corpus * 5, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = Qwen2ForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A throwaway redis-server on a free loopback port, no persistence; a context manager."""

    def __init__(self, workdir: Path) -> None:
        self.binary = shutil.which("redis-server")
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> RedisServer:
        if self.binary is None:
            raise RuntimeError("no redis-server binary on PATH")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within 10 s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def verdict_for(i: int) -> Category:
    """A verdict that depends only on the pair's index, so any process can check any entry."""
    return list(Category)[i % len(Category)]


def write_verdicts_concurrently(
    url: str, judge_id: str, first: int, last: int, barrier, per_put: int, results
) -> None:
    """Worker of the two-writer test: store pairs first..last-1 in small batches, reading as it goes."""
    from speciarl.verifier.cache import open_verdict_cache

    cache = open_verdict_cache(url, busy_timeout_s=30.0)
    barrier.wait(timeout=60)
    started = time.time()
    inserted = 0
    for start in range(first, last, per_put):
        batch = {
            (f"truth {i}", f"prediction {i}"): verdict_for(i)
            for i in range(start, min(start + per_put, last))
        }
        inserted += cache.put_many(judge_id, batch)
        cache.get_many(judge_id, list(batch))
    cache.close()
    results.put((inserted, started, time.time()))


def open_fresh_caches_at_once(paths: list[str], barrier, results) -> None:
    """Worker of the simultaneous-open test: open each new sqlite cache at the same moment as the others."""
    from speciarl.verifier.cache import CacheError, SqliteVerdictCache

    failures = []
    for path in paths:
        barrier.wait(timeout=60)
        try:
            SqliteVerdictCache(path, busy_timeout_s=10.0).close()
        except CacheError as err:
            failures.append(str(err))
    results.put(failures)

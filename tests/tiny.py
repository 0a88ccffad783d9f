"""Shared tiny BERT shape for unit tests: 2 layers, width 32, 4 heads."""

from paddlenlp.transformers import BertConfig

TINY_BERT = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=40,
    type_vocab_size=2,
    num_labels=3,
)


def tiny_bert_config(**overrides) -> BertConfig:
    """A fresh BertConfig of the tiny test shape, with ``overrides`` applied."""
    return BertConfig(**{**TINY_BERT, **overrides})

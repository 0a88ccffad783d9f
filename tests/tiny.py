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


def save_tiny_bert(folder, vocab_file) -> None:
    """Save a 2-layer, width-32 random ``BertModel`` (seed 0) with the vocabulary ``vocab_file`` as a
    PaddleNLP folder (the backbone of the end-to-end fine-tuning tests)."""
    import paddle
    from paddlenlp.transformers import BertModel, BertTokenizer

    tokenizer = BertTokenizer(str(vocab_file), do_lower_case=True, model_max_length=64)
    config = BertConfig(vocab_size=len(tokenizer.vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    paddle.seed(0)
    BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))

"""Shared test constants: the tiny BERT shape of the unit tests (2 layers, width 32, 4 heads) and the
BiBERT release's distillation flags."""

from pathlib import Path

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

#: the loss flags of the BiBERT release's distillation command line
BIBERT_FLAGS = [
    "--bi",
    "--pred_distill",
    "--query_distill",
    "--key_distill",
    "--value_distill",
    "--intermediate_distill",
]


def tiny_bert_config(**overrides) -> BertConfig:
    """A fresh BertConfig of the tiny test shape, with ``overrides`` applied."""
    return BertConfig(**{**TINY_BERT, **overrides})


def save_tiny_checkpoint(folder, vocab_file, model_class, seed: int = 0, tokenizer_kwargs=None, **config):
    """Save a random ``model_class`` (initialised after ``paddle.seed(seed)``) with the vocabulary
    ``vocab_file`` as a PaddleNLP folder and return the model. Shape: 2 layers, width 32, 4 heads,
    FFN 64, 128 positions, the vocabulary's size; ``config`` overrides or adds BertConfig fields."""
    import os

    import paddle
    from paddlenlp.transformers import BertTokenizer

    tokenizer = BertTokenizer(str(vocab_file), **(tokenizer_kwargs or {}))
    shape = dict(
        vocab_size=len(tokenizer.vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    bert_config = BertConfig(**{**shape, **config})
    paddle.seed(seed)
    model = model_class(bert_config)
    os.makedirs(str(folder), exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return model


def save_tiny_bert(folder, vocab_file) -> None:
    """Save a 2-layer, width-32 random ``BertModel`` (seed 0) with the vocabulary ``vocab_file`` as a
    PaddleNLP folder (the backbone of the end-to-end fine-tuning tests)."""
    from paddlenlp.transformers import BertModel

    save_tiny_checkpoint(
        folder,
        vocab_file,
        BertModel,
        tokenizer_kwargs=dict(do_lower_case=True, model_max_length=64),
        num_attention_heads=2,
        max_position_embeddings=64,
    )


def load_script(relative_path: str, name: str):
    """The script ``relative_path`` (from the repository root) imported as module ``name``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / relative_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_run_glue():
    """``examples/run_glue.py`` imported as a module (it is a script, not part of the package)."""
    return load_script("examples/run_glue.py", "run_glue_example")

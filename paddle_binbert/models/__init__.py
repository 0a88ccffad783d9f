"""Model surgery: quantized attention variants, quantize_model(), building a saved model's layout.

Loading checkpoints is :mod:`paddle_binbert.checkpoints` (``load_model``, ``load_checkpoint``).
"""

from .attention import AttentionRecord, QuantMultiHeadAttention
from .build import latent_fp_model
from .quantize import attention_records, get_bert, quant_config_of, quantization_role, quantize_model, set_recording

__all__ = [
    "AttentionRecord",
    "QuantMultiHeadAttention",
    "latent_fp_model",
    "attention_records",
    "get_bert",
    "quant_config_of",
    "quantization_role",
    "quantize_model",
    "set_recording",
]

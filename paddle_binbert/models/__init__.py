"""Model surgery: quantized attention variants, quantize_model(), checkpoint loading."""

from .attention import AttentionRecord, QuantMultiHeadAttention
from .loading import latent_fp_model, load_model
from .quantize import attention_records, get_bert, quant_config_of, quantization_role, quantize_model, set_recording

__all__ = [
    "AttentionRecord",
    "QuantMultiHeadAttention",
    "latent_fp_model",
    "load_model",
    "attention_records",
    "get_bert",
    "quant_config_of",
    "quantization_role",
    "quantize_model",
    "set_recording",
]

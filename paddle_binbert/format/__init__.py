"""File formats of paddle_binbert's outputs, readable without Paddle (numpy, safetensors, json).

:mod:`.packed`: the packed 1-bit model folder (``model.safetensors`` + ``config.json``), its
specification, writer (used by :func:`paddle_binbert.export.pack_model`) and validating reader
(used by :func:`paddle_binbert.engine.load` and :func:`paddle_binbert.runtime.load`).
"""

from .packed import (
    PackedFormatError,
    PackedModel,
    check_meta,
    expected_tensor_specs,
    has_packed_marker,
    is_fp_island,
    load_packed,
    pack_bits,
    packed_size_report,
    unpack_bits,
    write_packed,
)

__all__ = [
    "PackedFormatError",
    "PackedModel",
    "check_meta",
    "expected_tensor_specs",
    "has_packed_marker",
    "is_fp_island",
    "load_packed",
    "pack_bits",
    "packed_size_report",
    "unpack_bits",
    "write_packed",
]

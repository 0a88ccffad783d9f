"""Export of trained students: the packed 1-bit model file run by :mod:`paddle_binbert.engine`."""

from .outdir import OutputFolderError
from .pack import (
    PackedFormatError,
    PackedModel,
    expected_tensor_specs,
    is_fp_island,
    is_packed_dir,
    load_packed,
    pack_bits,
    pack_model,
    packed_size_report,
    round_fp_islands,
    unpack_bits,
)

__all__ = [
    "OutputFolderError",
    "PackedFormatError",
    "PackedModel",
    "expected_tensor_specs",
    "is_fp_island",
    "is_packed_dir",
    "load_packed",
    "pack_bits",
    "pack_model",
    "packed_size_report",
    "round_fp_islands",
    "unpack_bits",
]

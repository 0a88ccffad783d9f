"""Export of trained students: the packed 1-bit model folder run by :mod:`paddle_binbert.engine`
(its format, writer and reader: :mod:`paddle_binbert.format.packed`) and the static Paddle program
(:mod:`.static`)."""

from .outdir import OutputFolderError
from .pack import check_pack_output, is_packed_dir, pack_model, round_fp_islands

__all__ = [
    "OutputFolderError",
    "check_pack_output",
    "is_packed_dir",
    "pack_model",
    "round_fp_islands",
]

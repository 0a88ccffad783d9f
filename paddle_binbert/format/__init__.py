"""File formats of paddle_binbert's outputs, readable without Paddle (numpy, safetensors, json).

:mod:`paddle_binbert.format.packed`: the packed 1-bit model folder (``model.safetensors`` +
``config.json``), its specification, writer (used by :func:`paddle_binbert.export.pack_model`) and
validating reader ``load_packed`` (used by :func:`paddle_binbert.engine.load` and
:func:`paddle_binbert.runtime.load`).
"""

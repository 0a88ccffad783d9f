"""Tests of paddle_binbert.runtime: packed models without Paddle (ctypes library, tokenizer, Predictor)."""

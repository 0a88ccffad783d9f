"""Tests of paddle_binbert.inference: the predictor, Taskflow and the evaluators."""

"""Fixtures of the engine tests."""

import pytest

from paddle_binbert.engine import ops as engine_ops


@pytest.fixture(scope="module")
def ops():
    """The compiled engine operators (the test is skipped where they cannot be built)."""
    try:
        return engine_ops.load_ops()
    except engine_ops.EngineUnavailableError as err:  # e.g. no C++ compiler on this machine
        pytest.skip(str(err))

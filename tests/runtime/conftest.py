"""Fixtures of the runtime tests."""

import pytest

from paddle_binbert.runtime import library as runtime_library


@pytest.fixture(scope="session")
def lib():
    """The runtime's shared library (the test is skipped where it cannot be built, e.g. no compiler)."""
    try:
        return runtime_library.load_library()
    except runtime_library.RuntimeUnavailableError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def ops():
    """The Paddle engine's operators, the reference of the runtime's outputs."""
    from paddle_binbert.engine import ops as engine_ops

    try:
        return engine_ops.load_ops()
    except engine_ops.EngineUnavailableError as err:
        pytest.skip(str(err))

"""
Fixtures of the notebook tests: a real IPython kernel (jupyter_client, this venv's interpreter) per test.
The browser suite in `browser/` has its own fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel_session import KernelSession, write_kernel_spec


@pytest.fixture(scope="session")
def kernel_spec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_kernel_spec(tmp_path_factory.mktemp("kernels"))


@pytest.fixture
def kernel_session(kernel_spec_dir: Path) -> Iterator[KernelSession]:
    """A fresh kernel (cwd: the project root); shut down after the test."""
    session = KernelSession(kernel_spec_dir)
    try:
        yield session
    finally:
        session.shutdown()

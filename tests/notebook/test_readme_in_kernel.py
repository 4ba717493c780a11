"""The README's Jupyter blocks run as written, in a real kernel (the other blocks: tests/test_readme.py)."""

from __future__ import annotations

import pytest

from tests.notebook.kernel_session import KernelSession
from tests.support.readme_blocks import ReadmeBlock, readme_python_blocks

KERNEL_BLOCKS = [block for block in readme_python_blocks() if block.needs_a_kernel]


def test_the_readme_has_a_jupyter_block() -> None:
    assert KERNEL_BLOCKS


@pytest.mark.parametrize("block", KERNEL_BLOCKS, ids=[block.id for block in KERNEL_BLOCKS])
def test_readme_jupyter_block_runs_as_written_in_a_kernel(block: ReadmeBlock, kernel_session: KernelSession) -> None:
    result = kernel_session.run(block.code, timeout=60)
    assert result.status == "ok", result.error
    assert result.results, "the cell's value (the replies) was not displayed"
    kernel_session.run("_ = await replies.aresolve_messages()", timeout=30)
    assert kernel_session.value('"OFFLINE_LLM" in tree.to_text()') is True  # the tree saw the call

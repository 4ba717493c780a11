"""
Every Python block of the README runs as written, so the README cannot drift: each in a fresh interpreter,
offline (blocks that name OpenAI or Anthropic talk to the loopback wire server through the SDKs' own
environment variables). Blocks for Jupyter run in a real kernel (tests/notebook/test_readme_in_kernel.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.llm_wire_server import LLMWireServer
from tests.support.readme_blocks import ReadmeBlock, readme_python_blocks

ROOT = Path(__file__).resolve().parents[1]
SCRIPT_BLOCKS = [block for block in readme_python_blocks() if not block.needs_a_kernel]


def test_the_readme_has_python_blocks() -> None:
    assert len(SCRIPT_BLOCKS) >= 3


@pytest.mark.parametrize("block", SCRIPT_BLOCKS, ids=[block.id for block in SCRIPT_BLOCKS])
def test_readme_block_runs_as_written(block: ReadmeBlock, server: LLMWireServer, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OPENAI_API_KEY": "sk-readme-test",
        "OPENAI_BASE_URL": server.openai_base_url,
        "ANTHROPIC_API_KEY": "sk-ant-readme-test",
        "ANTHROPIC_BASE_URL": server.anthropic_base_url,
    }
    done = subprocess.run(
        [sys.executable, "-c", block.code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{block.id} failed:\n{done.stderr[-3000:]}"
    if block.printed is not None:
        assert done.stdout == block.printed

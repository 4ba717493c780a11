"""Importing MiniAgents and its LLM package never imports the provider SDKs (SPEC §4)."""

from __future__ import annotations

import subprocess
import sys

IMPORT_CHECK = (
    "import miniagents, miniagents.ext.llm, sys; "
    "assert 'openai' not in sys.modules and 'anthropic' not in sys.modules, "
    "sorted(m for m in sys.modules if m.split('.')[0] in ('openai', 'anthropic'))"
)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)


def test_import_miniagents_does_not_import_the_sdks() -> None:
    result = run_python(IMPORT_CHECK)
    assert result.returncode == 0, result.stderr


def test_defining_provider_agents_does_not_import_the_sdks() -> None:
    result = run_python(
        "import sys\n"
        "from miniagents.ext.llm.openai import create_openai_agent\n"
        "from miniagents.ext.llm.anthropic import create_anthropic_agent\n"
        "create_openai_agent(); create_anthropic_agent()\n"
        "assert 'openai' not in sys.modules and 'anthropic' not in sys.modules\n"
    )
    assert result.returncode == 0, result.stderr

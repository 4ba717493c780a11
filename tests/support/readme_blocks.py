"""The Python blocks of the README, as the tests that run them see them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class ReadmeBlock:
    line: int  # where the block starts in README.md
    code: str
    printed: str | None  # the output the README says it prints (a plain fence right after "prints"), if any

    @property
    def needs_a_kernel(self) -> bool:
        return "miniagents.notebook" in self.code

    @property
    def id(self) -> str:
        return f"README.md:{self.line}"


def readme_python_blocks() -> list[ReadmeBlock]:
    text = README.read_text(encoding="utf-8")
    fences = list(_FENCE.finditer(text))
    blocks = []
    for index, fence in enumerate(fences):
        if fence.group(1) != "python":
            continue
        printed = None
        if index + 1 < len(fences) and fences[index + 1].group(1) == "":
            between = text[fence.end() : fences[index + 1].start()]
            if between.strip() == "prints":
                printed = fences[index + 1].group(2)
        blocks.append(ReadmeBlock(text.count("\n", 0, fence.start()) + 1, fence.group(2), printed))
    return blocks

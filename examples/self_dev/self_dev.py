"""
Self-development: agents read MiniAgents' own source in parallel and draft its documentation.

One SOURCE_READER agent per module of a subpackage (default: `miniagents.promising`) reads the module and replies
with an outline of its public API; a DOC_WRITER LLM agent drafts a markdown section from each outline as soon as
it is read; an EDITOR LLM agent writes the page's title and introduction from the sections. The page streams to
the terminal as it is written. The notebook `notebooks/09_self_dev.ipynb` walks through the same pipeline.

    python examples/self_dev/self_dev.py                    # offline stand-in LLM (NOT a real model), no key
    python examples/self_dev/self_dev.py --llm replay       # the notebook's recorded responses, no network
    python examples/self_dev/self_dev.py --llm openai       # a real model: needs OPENAI_API_KEY
    python examples/self_dev/self_dev.py --llm anthropic --output promising.md   # needs ANTHROPIC_API_KEY

`--llm offline` drafts with a template (deterministic, clearly labelled). `--llm replay` replays
`notebooks/recordings/09_self_dev`, which answers only the notebook's exact requests (package
`miniagents.promising`); those recordings come from a local stand-in server with hand-written replies, not from a
real model.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import sys
from pathlib import Path

import miniagents
from miniagents import InteractionContext, Message, MiniAgent, MiniAgents, miniagent
from miniagents.utils import join_messages

PACKAGE_DIR = Path(miniagents.__file__).parent
RECORDINGS = Path(__file__).resolve().parents[2] / "notebooks" / "recordings" / "09_self_dev"

WRITER_PROMPT = (
    "You are a technical writer documenting the Python package MiniAgents. From the outline of one module, "
    "write its reference section in markdown: a level-2 heading with the module name in backticks, one "
    "paragraph on what the module is for, then one bullet per public name. Be accurate and concise, and do "
    "not invent names that are not in the outline."
)
EDITOR_PROMPT = (
    "You are the documentation editor of the Python package MiniAgents. Given the reference sections drafted "
    "for the modules of one subpackage, write the page's title (a level-1 heading) and a one-paragraph "
    "introduction to the subpackage as a whole. Reply with the title and the introduction only."
)


def find_modules(package: str) -> dict[str, Path]:
    """The modules of a subpackage of miniagents (`__init__` files left out), by dotted name."""
    folder = PACKAGE_DIR.parent.joinpath(*package.split("."))
    if not folder.is_dir():
        raise SystemExit(f"{package} is not a subpackage of miniagents (no folder {folder})")
    return {
        ".".join(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts): path
        for path in sorted(folder.rglob("*.py"))
        if path.name != "__init__.py"
    }


def outline(module: str, source: str) -> str:
    """The public API of a module, as text: its summary, then one line per public name."""
    tree = ast.parse(source)
    summary = " ".join((ast.get_docstring(tree) or "").split("\n\n")[0].split())
    lines = [f"Module: {module}", f"Summary: {summary}", "Public API:"]
    constants = []
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            first_line = (ast.get_docstring(node) or "").strip().split("\n")[0]
            lines.append(f"- {kind} {node.name}" + (f": {first_line}" if first_line else ""))
        elif isinstance(node, ast.Assign):
            names = [target.id for target in node.targets if isinstance(target, ast.Name)]
            constants += [name for name in names if name.isupper() and not name.startswith("_")]
    if constants:
        lines.append(f"- constants: {', '.join(constants)}")
    return "\n".join(lines)


# ------------------------------------------------------------------ the offline stand-in's "drafts"


def template_section(messages: tuple[Message, ...]) -> str:
    """A section drafted from an outline by a template (what the offline stand-in LLM replies)."""
    lines = str(messages[-1]).splitlines()
    module = lines[0].removeprefix("Module: ")
    summary = lines[1].removeprefix("Summary: ")
    bullets = []
    for line in lines[3:]:
        if line.startswith("- constants: "):
            names = line.removeprefix("- constants: ").split(", ")
            bullets.append(f"- constants: {', '.join(f'`{name}`' for name in names)}")
            continue
        kind_and_name, _, description = line.removeprefix("- ").partition(": ")
        kind, _, name = kind_and_name.partition(" ")
        bullets.append(f"- **`{name}`** ({kind})" + (f": {description}" if description else ""))
    return "\n".join([f"## `{module}`", "", summary, "", *bullets])


def template_introduction(messages: tuple[Message, ...]) -> str:
    """A title and introduction drafted by a template from the joined sections."""
    text = str(messages[-1])
    modules = [line.removeprefix("## ").strip("`") for line in text.splitlines() if line.startswith("## ")]
    package = modules[0].rsplit(".", 1)[0] if modules else "miniagents"
    return (
        f"# `{package}`\n\n"
        "_Drafted by the offline stand-in LLM: a template, not a real model._\n\n"
        f"This page documents the {len(modules)} modules of `{package}`: "
        + ", ".join(f"`{module.rsplit('.', 1)[-1]}`" for module in modules)
        + "."
    )


# ------------------------------------------------------------------ the agents


def create_llm_agents(llm: str) -> tuple[MiniAgent, MiniAgent]:
    """The DOC_WRITER and EDITOR agents for `--llm` offline, replay, openai or anthropic."""
    if llm == "offline":
        from miniagents.ext.llm.offline import create_offline_agent

        return (
            create_offline_agent(template_section, token_delay=0.002, alias="DOC_WRITER"),
            create_offline_agent(template_introduction, token_delay=0.002, alias="EDITOR"),
        )
    if llm == "anthropic":
        from miniagents.ext.llm.anthropic import create_anthropic_agent

        return (
            create_anthropic_agent(alias="DOC_WRITER", temperature=0, system=WRITER_PROMPT),
            create_anthropic_agent(alias="EDITOR", temperature=0, system=EDITOR_PROMPT),
        )
    from miniagents.ext.llm.openai import create_openai_agent

    options = {}
    if llm == "replay":  # exactly the notebook's agents: a dummy key, no reachable server, recorded responses
        from openai import AsyncOpenAI

        from miniagents.ext.llm import LLMResponseCache

        options = {
            "async_client": AsyncOpenAI(api_key="replay-only", base_url="http://127.0.0.1:9"),
            "response_cache": LLMResponseCache(RECORDINGS, mode="replay"),
        }
    return (
        create_openai_agent(alias="DOC_WRITER", model="gpt-4o-mini", temperature=0, system=WRITER_PROMPT, **options),
        create_openai_agent(alias="EDITOR", model="gpt-4o-mini", temperature=0, system=EDITOR_PROMPT, **options),
    )


def create_team(modules: dict[str, Path], doc_writer: MiniAgent, editor: MiniAgent) -> MiniAgent:
    """The DOCUMENTATION_TEAM agent: readers and writers per module in parallel, then the editor."""

    @miniagent
    async def source_reader(ctx: InteractionContext, module: str) -> None:
        """Reads the source of one module and replies with the outline of its public API."""
        source = await asyncio.to_thread(modules[module].read_text, encoding="utf-8")
        ctx.reply(Message(outline(module, source), role="user", module=module))

    @miniagent
    async def documentation_team(ctx: InteractionContext, package: str) -> None:
        """Drafts the documentation page of a subpackage: a section per module, in parallel, then an introduction."""
        sections = [
            doc_writer.inquire(source_reader.inquire(module=module))
            for module in modules
            if module.startswith(f"{package}.")
        ]
        ctx.reply(editor.inquire(join_messages(sections, role="user")))
        ctx.reply(sections)

    return documentation_team


async def adraft_page(package: str, llm: str) -> str:
    """Draft the documentation page of `package`, streaming it to the terminal; returns the page."""
    doc_writer, editor = create_llm_agents(llm)
    team = create_team(find_modules(package), doc_writer, editor)
    page = team.inquire(package=package)
    async for section in page:  # stream the page to the terminal as it is written
        async for token in section:
            print(token, end="", flush=True)
        print("\n")
    return (await join_messages(page)).text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", default="miniagents.promising", help="the subpackage to document")
    parser.add_argument("--llm", choices=("offline", "replay", "openai", "anthropic"), default="offline")
    parser.add_argument("--output", type=Path, help="also write the page to this markdown file")
    args = parser.parse_args()
    if args.llm == "offline":
        print("(drafting with the offline stand-in LLM: a template, NOT a real model)\n", file=sys.stderr)
    page = MiniAgents().run(adraft_page(args.package, args.llm))
    if args.output is not None:
        args.output.write_text(page + "\n", encoding="utf-8")
        print(f"(written to {args.output})", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Which processes descend from this test run, read from /proc: the check that nothing outlives the suite."""

from __future__ import annotations

import os
from pathlib import Path


def descendant_processes(root_pid: int | None = None) -> dict[int, str]:
    """Map pid -> command line of every live (non-zombie) descendant of `root_pid` (default: this process)."""
    root_pid = os.getpid() if root_pid is None else root_pid
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue  # the process ended while we looked
        # Fields after the command name (which may hold spaces) start after the last ')'.
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state == "Z":
            continue
        parents[int(entry.name)] = int(ppid)
        commands[int(entry.name)] = cmdline[:200]
    found: dict[int, str] = {}
    frontier = [root_pid]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = commands[pid]
                frontier.append(pid)
    return found

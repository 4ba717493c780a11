"""
Runs ONE (implementation, workload, size) in the current (fresh) process and prints ONE JSON line:

    {"seconds": ..., "cpu_seconds": ..., "peak_rss_kb": ..., "rss_before_kb": ..., "check": ..., ...}

Usage (normally invoked by run.py, with the right interpreter / PYTHONPATH for the implementation):

    python benchmarks/worker.py IMPL WORKLOAD SIZE [--no-gc]
    IMPL     = asyncio | ours | v0013 | v0035
    WORKLOAD = relay | fanout | fanin | nesting | replay | hash | import | store | store_run | cell_fanout
               | toplevel_fanout | tree_rounds | rounds

Only the workload itself is timed (time.perf_counter): the returned callable creates the event loop, enters and
leaves `MiniAgents()` (framework implementations) and runs the work; interpreter start-up, imports and data
preparation are outside the timed region. For `import` the timed region is the import of the public API itself, done
before anything else is imported here (so it is the same as the total of `python -X importtime`).
"""

import sys
import time

# which module implements the workloads for which implementation ("ours" and 0.0.13 share the same API => same code)
WORKLOAD_MODULES = {
    "asyncio": "workloads_asyncio",
    "ours": "workloads_ours",
    "v0013": "workloads_ours",
    "v0035": "workloads_peer_latest",
}


def _time_import(impl: str) -> tuple[float, float, str]:
    """Time the import of the public API (nothing but builtins has been imported at this point)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    style = _import_api(impl)
    return time.perf_counter() - start, time.process_time() - cpu_start, style


def _import_api(impl: str) -> str:
    if impl == "asyncio":
        # the floor of the package's import: the event loop and pydantic's models, which MiniAgents builds on
        import asyncio  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import

        from pydantic import BaseModel  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import

        return "n/a"

    if impl == "v0035":
        # pylint: disable=import-outside-toplevel,unused-import
        from miniagents import InteractionContext, MiniAgents, TextMessage, miniagent  # noqa: F401

        return "top-level"

    # "ours" / "v0013": `import miniagents` + the 0.0.13-style public names
    try:
        # pylint: disable=import-outside-toplevel,unused-import
        from miniagents import InteractionContext, Message, MiniAgents, miniagent

        style = "top-level"
    except ImportError:
        # 0.0.13's `miniagents/__init__.py` is empty: the names live in the submodules
        # pylint: disable=import-outside-toplevel,unused-import
        from miniagents.messages import Message  # noqa: F401
        from miniagents.miniagents import InteractionContext, MiniAgents, miniagent  # noqa: F401

        style = "submodules"
    return style


def main() -> None:
    impl, workload, size = sys.argv[1:4]
    collect_garbage = "--no-gc" not in sys.argv[4:]  # --no-gc: the cyclic garbage collector is off while timed
    if impl not in WORKLOAD_MODULES:
        raise SystemExit(f"unknown implementation {impl!r}")

    if workload == "import":
        seconds, cpu_seconds, api_import = _time_import(impl)
        check: object = "ok"
        rss_before_kb = None
        extra = None
    else:
        import gc  # pylint: disable=import-outside-toplevel
        import importlib  # pylint: disable=import-outside-toplevel

        module = importlib.import_module(WORKLOAD_MODULES[impl])
        api_import = module.API_IMPORT
        bench = getattr(module, f"bench_{workload}", None)
        if bench is None:
            raise SystemExit(f"workload {workload!r} is not implemented for {impl!r}")
        run = bench(size)  # untimed preparation (data, closures); agents were defined at import time
        gc.collect()
        if not collect_garbage:
            gc.disable()
        rss_before_kb = _maxrss_kb()
        start, cpu_start = time.perf_counter(), time.process_time()
        result = run()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        # optional, untimed: `run.after(result)` makes the check (closing files, reading them back)
        after = getattr(run, "after", None)
        check = after(result) if after is not None else result
        # optional: `run.extra` (filled by the run) carries per-round data; a workload that probes between its
        # timed parts reports their sum as `seconds` / `cpu_seconds` there (the whole region is kept as well)
        extra = getattr(run, "extra", None)
        if extra and "seconds" in extra:
            region_seconds, region_cpu_seconds = seconds, cpu_seconds
            seconds, cpu_seconds = extra.pop("seconds"), extra.pop("cpu_seconds")
            extra.update(region_seconds=region_seconds, region_cpu_seconds=region_cpu_seconds)

    peak_rss_kb = _maxrss_kb()

    import json  # pylint: disable=import-outside-toplevel

    miniagents_module = sys.modules.get("miniagents")
    print(
        json.dumps(
            {
                "seconds": seconds,  # wall clock (perf_counter) - what the table shows by default
                "cpu_seconds": cpu_seconds,  # process CPU time of the same region (less sensitive to other load)
                "peak_rss_kb": peak_rss_kb,
                "rss_before_kb": rss_before_kb,
                "check": check,
                "gc": collect_garbage,
                "extra": extra,
                "impl": impl,
                "workload": workload,
                "size": size,
                "api_import": api_import,
                "miniagents_file": getattr(miniagents_module, "__file__", None),
                "miniagents_version": _miniagents_version(impl),
                "python": sys.version.split()[0],
                "executable": sys.executable,
            },
            sort_keys=True,
        ),
        flush=True,
    )


def _maxrss_kb() -> int:
    import resource  # pylint: disable=import-outside-toplevel

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux


def _miniagents_version(impl: str) -> object:
    if impl == "asyncio":
        return None
    from importlib import metadata  # pylint: disable=import-outside-toplevel

    try:
        return metadata.version("miniagents")
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()

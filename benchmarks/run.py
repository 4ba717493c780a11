#!/usr/bin/env python
"""
MiniAgents benchmark runner (stdlib only).

    python benchmarks/run.py                      # 5 repeats, full sizes, all implementations
    python benchmarks/run.py --quick              # 1 repeat, small sizes (smoke test, ~1 min)
    python benchmarks/run.py --only fanout_5k,fanout_10k --repeat 3 --output bench.md --json bench.json
    python benchmarks/run.py --ours-python ~/.cache/miniagents-bench/venv-0.0.13/bin/python   # dry-run "ours"

Implementations (columns):
  asyncio  plain asyncio / plain Python baseline            (current interpreter, workloads_asyncio.py)
  ours     the package in this repo                          (current interpreter + PYTHONPATH=<repo>,
                                                              or --ours-python, workloads_ours.py)
  0.0.13   published miniagents==0.0.13 (same API as ours)  (cached venv, workloads_ours.py)
  0.0.35   published miniagents==0.0.35 (renamed API)       (cached venv, workloads_peer_latest.py)

Every (implementation, workload) run is a FRESH subprocess (`worker.py IMPL WORKLOAD SIZE`) printing one JSON line;
runs are interleaved round-robin over the implementations (the order rotates every repeat); the table shows the
MEDIAN per cell. A cell whose `check` differs from the reference (the asyncio baseline) shows MISMATCH, a cell with
a failed run shows ERR - never a number. See benchmarks/README.md.
"""

import argparse
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WORKER = BENCH_DIR / "worker.py"
DEFAULT_CACHE_DIR = Path(os.environ.get("MINIAGENTS_BENCH_CACHE", "~/.cache/miniagents-bench")).expanduser()

PEER_VERSIONS = {"v0013": "0.0.13", "v0035": "0.0.35"}
IMPLS = ["asyncio", "ours", "v0013", "v0035"]
LABELS = {"asyncio": "asyncio", "ours": "ours", "v0013": "0.0.13", "v0035": "0.0.35"}
LABEL_TO_IMPL = {**{v: k for k, v in LABELS.items()}, **{k: k for k in LABELS}}


class Workload:
    def __init__(
        self,
        name: str,
        worker_name: str,
        size: str,
        quick_size: str,
        title: str,
        impls: tuple[str, ...] = (),
        gc: bool = True,
    ) -> None:
        self.name = name
        self.worker_name = worker_name
        self.size = size
        self.quick_size = quick_size
        self.title = title  # may contain {size}
        self.impls = impls or tuple(IMPLS)  # the implementations that have this workload (the others show "-")
        self.gc = gc  # False: the worker disables Python's cyclic garbage collector for the timed part


OURS_AND_FLOOR = ("asyncio", "ours")
WORKLOADS = [
    Workload("relay", "relay", "100000", "10000", "token relay: {size} tokens, producer -> 3 relays -> consumer"),
    Workload("fanout_5k", "fanout", "5000", "500", "fan-out: {size} parallel sub-agent calls"),
    Workload("fanout_10k", "fanout", "10000", "1000", "fan-out: {size} parallel sub-agent calls"),
    Workload(
        "fanout_100k", "fanout", "100000", "10000", "fan-out: {size} parallel sub-agent calls", impls=OURS_AND_FLOOR
    ),
    Workload(
        "fanout_10k_nogc",
        "fanout",
        "10000",
        "1000",
        "fan-out: {size} parallel sub-agent calls, gc disabled",
        impls=OURS_AND_FLOOR,
        gc=False,
    ),
    Workload(
        "fanout_100k_nogc",
        "fanout",
        "100000",
        "10000",
        "fan-out: {size} parallel sub-agent calls, gc disabled",
        impls=OURS_AND_FLOOR,
        gc=False,
    ),
    Workload("fanin", "fanin", "200x500", "20x100", "fan-in: {size} (producers x tokens) -> 1 consumer"),
    Workload("nesting", "nesting", "200", "50", "deep nesting: {size} levels"),
    Workload("replay", "replay", "50000x10", "5000x10", "replay: {size} (tokens x concurrent consumers)"),
    Workload("hash", "hash", "2000", "200", "freeze+hash: {size} nested Messages (~200 fields)"),
    Workload("import", "import", "1", "1", "import time (public API, fresh process; floor: asyncio + pydantic)"),
    Workload(
        "store",
        "store",
        "10000",
        "1000",
        "store: the messages of a {size}-call run persisted (floor: sqlite3 executemany, one transaction)",
        impls=OURS_AND_FLOOR,
    ),
    Workload("store_run", "store_run", "10000", "1000", "store attached to a {size}-call fan-out", impls=("ours",)),
    Workload(
        "cell_fanout",
        "cell_fanout",
        "8000",
        "800",
        "notebook cell: {size} parallel calls in a RunScope",
        impls=("ours",),
    ),
    Workload(
        "toplevel_fanout",
        "toplevel_fanout",
        "8000",
        "800",
        "{size} parallel top-level calls (no scope)",
        impls=OURS_AND_FLOOR,
    ),
    Workload(
        "tree_rounds", "tree_rounds", "20x5000", "3x500", "MessageTree, then {size} (rounds x calls)", impls=("ours",)
    ),
    Workload("rounds", "rounds", "20x5000", "3x500", "the same rounds without a tree", impls=("ours",)),
]
WORKLOADS_BY_NAME = {w.name: w for w in WORKLOADS}
METRICS = {"wall": "seconds", "cpu": "cpu_seconds"}


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------------------------
# environments
# ----------------------------------------------------------------------------------------------------------------------


def _python_pydantic_version(python: str, env: dict[str, str]) -> str | None:
    try:
        out = subprocess.run(
            [python, "-c", "import pydantic; print(pydantic.VERSION)"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        )
        return out.stdout.strip() or None
    except (subprocess.SubprocessError, OSError):
        return None


def ensure_peer_venv(version: str, cache_dir: Path, pydantic_pin: str | None, rebuild: bool) -> Path:
    """Create (once) and cache a venv with `miniagents==version` under the cache dir; return its python."""
    venv_dir = cache_dir / f"venv-{version}"
    python = venv_dir / "bin" / "python"
    marker = venv_dir / ".bench-ready.json"
    requirements = [f"miniagents=={version}"] + ([f"pydantic=={pydantic_pin}"] if pydantic_pin else [])
    spec = {"requirements": requirements, "base_python": sys.executable, "base_version": sys.version.split()[0]}

    if not rebuild and python.exists() and marker.exists():
        try:
            if json.loads(marker.read_text()).get("spec") == spec:
                return python
        except (OSError, ValueError):
            pass

    log(f"[setup] creating venv {venv_dir} with {' '.join(requirements)} ...")
    if venv_dir.exists():
        # only ever delete our own venv directory inside the cache dir
        if venv_dir.resolve().parent != cache_dir.resolve():
            raise RuntimeError(f"refusing to delete {venv_dir}")
        shutil.rmtree(venv_dir)
    subprocess.run([sys.executable, "-m", "venv", str(venv_dir)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    result = subprocess.run(pip + requirements, capture_output=True, text=True)
    if result.returncode != 0 and pydantic_pin:
        log(f"[setup] pinned install failed, retrying without the pydantic pin:\n{result.stderr[-2000:]}")
        requirements = requirements[:1]
        result = subprocess.run(pip + requirements, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(requirements)} failed:\n{result.stderr[-4000:]}")

    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True, check=True).stdout
    marker.write_text(json.dumps({"spec": spec, "installed": freeze.split()}, indent=1))
    return python


def base_env(cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE"):
        env.pop(var, None)
    # bytecode goes to the cache dir, never into the repo (nor into the venvs' own __pycache__ dirs)
    env["PYTHONPYCACHEPREFIX"] = str(cache_dir / "pycache")
    env["PYTHONHASHSEED"] = "0"
    return env


class Impl:
    def __init__(self, key: str, python: str, env: dict[str, str], expect: dict[str, Any]) -> None:
        self.key = key
        self.label = LABELS[key]
        self.python = python
        self.env = env
        self.expect = expect  # what the worker must report (which miniagents it imported)
        self.unavailable: str | None = None


# ----------------------------------------------------------------------------------------------------------------------
# running
# ----------------------------------------------------------------------------------------------------------------------


def run_worker(impl: Impl, workload: str, size: str, timeout: float, cwd: Path, gc: bool = True) -> dict[str, Any]:
    cmd = [impl.python, str(WORKER), impl.key, workload, size] + ([] if gc else ["--no-gc"])
    wall_start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=impl.env, cwd=cwd, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f}s", "timeout": True}
    except OSError as exc:
        return {"error": f"cannot start {impl.python}: {exc}"}
    wall = time.perf_counter() - wall_start

    record = None
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            candidate = json.loads(line)
        except ValueError:
            continue
        if isinstance(candidate, dict) and "seconds" in candidate:
            record = candidate
            break
    if proc.returncode != 0 or record is None:
        tail = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"exit {proc.returncode}: {tail[:300]}", "stderr_tail": proc.stderr[-3000:]}

    record["wall_seconds"] = wall
    problem = _verify_identity(impl, record)
    if problem:
        record["error"] = problem
    return record


def _verify_identity(impl: Impl, record: dict[str, Any]) -> str | None:
    """Make sure the worker really ran the implementation the column claims (no silent fallbacks)."""
    if "miniagents_under" in impl.expect:
        file = record.get("miniagents_file") or ""
        if not file.startswith(impl.expect["miniagents_under"]):
            return f"imported miniagents from {file!r}, not from {impl.expect['miniagents_under']!r}"
    if "miniagents_version" in impl.expect and record.get("miniagents_version") != impl.expect["miniagents_version"]:
        return f"miniagents version {record.get('miniagents_version')!r} != {impl.expect['miniagents_version']!r}"
    return None


def main() -> int:
    args = parse_args()
    if args.from_json:
        return rerender(args)
    cache_dir: Path = args.cache_dir.expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    env0 = base_env(cache_dir)

    selected_workloads = select_workloads(args.only)
    sizes = {w.name: (w.quick_size if args.quick else w.size) for w in selected_workloads}
    for override in args.size:
        name, _, size = override.partition("=")
        if name not in WORKLOADS_BY_NAME or not size:
            raise SystemExit(f"bad --size {override!r} (expected WORKLOAD=SIZE, e.g. relay=50000)")
        sizes[name] = size
    repeat = 1 if args.quick and args.repeat is None else (args.repeat or 5)

    impl_keys = [LABEL_TO_IMPL[i.strip()] for i in args.impls.split(",") if i.strip()] if args.impls else IMPLS
    impls = build_impls(impl_keys, args, cache_dir, env0)
    runnable = [impl for impl in impls if not impl.unavailable]

    meta = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "loadavg_start": _loadavg(),
        "repeat": repeat,
        "quick": args.quick,
        "sizes": {w.name: sizes[w.name] for w in selected_workloads},
        "impls": {
            impl.label: {"python": impl.python, "unavailable": impl.unavailable, "expect": impl.expect}
            for impl in impls
        },
        "cache_dir": str(cache_dir),
        "machine": machine_description(sys.executable),
    }

    if not args.no_warmup:
        # compile bytecode into the pycache prefix + warm the OS file cache, so that the first timed `import`
        # run is not penalised (nothing from the warm-up is recorded)
        for impl in runnable:
            warm = run_worker(impl, "import", "1", args.timeout, cache_dir)
            if "error" in warm:
                log(f"[warm-up] {impl.label}: {warm['error']}")
                if args.verbose and warm.get("stderr_tail"):
                    log(warm["stderr_tail"])

    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        w.name: {impl.key: [] for impl in impls} for w in selected_workloads
    }
    timed_out: set[tuple[str, str]] = set()
    total = repeat * sum(1 for w in selected_workloads for impl in runnable if impl.key in w.impls)
    done = 0
    for rep in range(repeat):
        order = runnable[rep % len(runnable) :] + runnable[: rep % len(runnable)] if runnable else []
        for workload in selected_workloads:
            for impl in order:
                if impl.key not in workload.impls:
                    continue
                done += 1
                if (workload.name, impl.key) in timed_out:
                    results[workload.name][impl.key].append({"error": "skipped (timed out before)"})
                    continue
                record = run_worker(
                    impl, workload.worker_name, sizes[workload.name], args.timeout, cache_dir, gc=workload.gc
                )
                results[workload.name][impl.key].append(record)
                if record.get("timeout"):
                    timed_out.add((workload.name, impl.key))
                status = record.get("error") or f"{record['seconds']:.4f}s"
                log(f"[{done}/{total}] rep {rep + 1}/{repeat}  {workload.name:<11} {impl.label:<7} {status}")
                if args.verbose and record.get("stderr_tail"):
                    log(record["stderr_tail"])

    meta["loadavg_end"] = _loadavg()
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    report = build_report(selected_workloads, sizes, impls, results, METRICS[args.metric])
    markdown = render_markdown(report, impls, meta)
    write_outputs(args, markdown, {"meta": meta, "report": report, "raw": results})
    return 0


def write_outputs(args: argparse.Namespace, markdown: str, data: dict[str, Any]) -> None:
    print(markdown)
    if args.output:
        Path(args.output).write_text(markdown)
        log(f"[done] markdown table written to {args.output}")
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
        log(f"[done] raw JSON written to {args.json}")


def rerender(args: argparse.Namespace) -> int:
    """Rebuild the table from a previous `--json` file (e.g. with `--metric cpu`), without running anything."""
    data = json.loads(Path(args.from_json).read_text())
    meta, raw = data["meta"], data["raw"]
    workloads = [w for w in WORKLOADS if w.name in raw]  # keep the canonical order (the JSON keys are sorted)
    impls = []
    for key in IMPLS:
        info = meta["impls"].get(LABELS[key])
        if info is None:
            continue
        impl = Impl(key, info["python"], {}, info.get("expect", {}))
        impl.unavailable = info["unavailable"]
        impls.append(impl)
    report = build_report(workloads, meta["sizes"], impls, raw, METRICS[args.metric])
    if args.json and Path(args.json).resolve() == Path(args.from_json).resolve():
        raise SystemExit("--json must differ from --from-json")
    write_outputs(args, render_markdown(report, impls, meta), {"meta": meta, "report": report, "raw": raw})
    return 0


def build_impls(impl_keys: list[str], args: argparse.Namespace, cache_dir: Path, env0: dict[str, str]) -> list[Impl]:
    impls: list[Impl] = []
    ours_python = str(Path(args.ours_python).expanduser()) if args.ours_python else sys.executable
    ours_env = dict(env0)
    ours_expect: dict[str, Any] = {}
    if not args.ours_python:
        ours_env["PYTHONPATH"] = str(REPO_ROOT)
        ours_expect["miniagents_under"] = str(REPO_ROOT / "miniagents") + os.sep

    for key in impl_keys:
        if key == "asyncio":
            impls.append(Impl("asyncio", sys.executable, dict(env0), {}))
        elif key == "ours":
            impl = Impl("ours", ours_python, ours_env, ours_expect)
            if args.ours_python and not os.access(ours_python, os.X_OK):
                impl.unavailable = f"--ours-python {ours_python} is not an executable"
            elif not args.ours_python and not (REPO_ROOT / "miniagents" / "__init__.py").exists():
                impl.unavailable = f"not landed yet ({REPO_ROOT / 'miniagents' / '__init__.py'} missing)"
            impls.append(impl)
        else:
            version = PEER_VERSIONS[key]
            impl = Impl(key, "", dict(env0), {"miniagents_version": version})
            try:
                pin = resolve_pydantic_pin(args.peer_pydantic, ours_python, ours_env)
                impl.python = str(ensure_peer_venv(version, cache_dir, pin, args.rebuild_venvs))
            except Exception as exc:  # pylint: disable=broad-except
                impl.unavailable = f"venv setup failed: {exc}"
                log(f"[setup] {LABELS[key]}: {impl.unavailable}")
            impls.append(impl)
    return impls


_PIN_CACHE: dict[str, str | None] = {}


def resolve_pydantic_pin(mode: str, ours_python: str, ours_env: dict[str, str]) -> str | None:
    """'match' (default): same pydantic as "ours" runs with; 'latest': no pin; anything else: that version."""
    if mode == "latest":
        return None
    if mode != "match":
        return mode
    if "match" not in _PIN_CACHE:
        _PIN_CACHE["match"] = _python_pydantic_version(ours_python, ours_env)
    return _PIN_CACHE["match"]


# ----------------------------------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------------------------------


def _canonical(check: Any) -> str:
    return json.dumps(check, sort_keys=True)


def build_report(workloads, sizes, impls, results, metric: str = "seconds") -> dict[str, Any]:
    """`metric`: "seconds" (wall clock, perf_counter) or "cpu_seconds" (process CPU time of the same region)."""
    report: dict[str, Any] = {"metric": metric, "workloads": {}, "derived": {}}
    for workload in workloads:
        per_impl = results[workload.name]
        # reference check: the asyncio baseline if it ran consistently, otherwise the most common check overall
        reference = None
        baseline_checks = {_canonical(r["check"]) for r in per_impl.get("asyncio", []) if "error" not in r}
        if len(baseline_checks) == 1:
            reference = baseline_checks.pop()
        else:
            counter = collections.Counter(
                _canonical(r["check"]) for runs in per_impl.values() for r in runs if "error" not in r
            )
            if counter:
                reference = counter.most_common(1)[0][0]

        cells = {}
        for impl in impls:
            runs = per_impl.get(impl.key, [])
            cell: dict[str, Any] = {"runs": len(runs)}
            if impl.key not in workload.impls:
                cell.update(status="skip", note="not a workload of this implementation")
            elif impl.unavailable:
                cell.update(status="n/a", note=impl.unavailable)
            elif not runs:
                cell.update(status="n/a", note="not run")
            else:
                errors = [r["error"] for r in runs if "error" in r]
                good = [r for r in runs if "error" not in r]
                wrong = [r for r in good if _canonical(r["check"]) != reference]
                seconds = [r[metric] for r in good]
                cell["seconds"] = seconds
                cell["checks"] = sorted({_canonical(r["check"]) for r in good})
                cell["api_import"] = sorted({r.get("api_import") for r in good})
                if errors:
                    cell.update(status="ERR", note=f"{len(errors)}/{len(runs)} runs failed: {errors[0]}")
                elif wrong:
                    cell.update(
                        status="MISMATCH",
                        note=f"check {_canonical(wrong[0]['check'])} != reference {reference}",
                    )
                else:
                    cell.update(status="ok", median=statistics.median(seconds), min=min(seconds), max=max(seconds))
                    if workload.worker_name == "fanout":
                        n = int(sizes[workload.name])
                        per_call = [
                            (r["peak_rss_kb"] - r["rss_before_kb"]) * 1024 / n
                            for r in good
                            if r.get("rss_before_kb") is not None
                        ]
                        cell["rss_bytes_per_call"] = per_call
                        cell["rss_bytes_per_call_median"] = statistics.median(per_call) if per_call else None
                        cell["peak_rss_kb_median"] = statistics.median(r["peak_rss_kb"] for r in good)
            cells[impl.key] = cell
        report["workloads"][workload.name] = {
            "size": sizes[workload.name],
            "title": workload.title.format(size=sizes[workload.name]),
            "reference_check": reference,
            "cells": cells,
        }

    wl = report["workloads"]
    for key, small, large in (
        ("fanout_scaling", "fanout_5k", "fanout_10k"),
        ("fanout_scaling_100k", "fanout_10k", "fanout_100k"),
        ("fanout_scaling_100k_nogc", "fanout_10k_nogc", "fanout_100k_nogc"),
    ):
        if small in wl and large in wl:
            scaling = {}
            for impl in impls:
                a, b = wl[small]["cells"][impl.key], wl[large]["cells"][impl.key]
                if a.get("status") == "ok" and b.get("status") == "ok" and a["median"] > 0:
                    scaling[impl.key] = b["median"] / a["median"]
            linear = int(wl[large]["size"]) / int(wl[small]["size"])
            report["derived"][key] = {
                "title": f"fan-out scaling t({wl[large]['size']})/t({wl[small]['size']}) ({linear:.1f} = linear)"
                + (", gc disabled" if key.endswith("_nogc") else ""),
                "values": scaling,
                "linear": linear,
            }
    if "fanout_5k" in wl:
        per_call = {}
        for impl in impls:
            cell = wl["fanout_5k"]["cells"][impl.key]
            if cell.get("status") == "ok" and cell.get("rss_bytes_per_call_median") is not None:
                per_call[impl.key] = cell["rss_bytes_per_call_median"]
        report["derived"]["bytes_per_call"] = {
            "title": f"peak-RSS growth per agent call, fan-out {wl['fanout_5k']['size']} (bytes)",
            "values": per_call,
        }
    rounds = {}
    for name in ("tree_rounds", "rounds"):
        if name in wl and wl[name]["cells"].get("ours", {}).get("status") == "ok":
            rounds[name] = _median_rounds([r for r in results[name]["ours"] if "error" not in r], metric)
    if rounds:
        report["derived"]["rounds"] = rounds
    report["targets"] = build_targets(report)
    return report


def _median_rounds(runs: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Per round, the median over the runs of each probe (time in `metric`, live messages, RSS...)."""
    per_run = [r["extra"]["rounds"] for r in runs if r.get("extra") and r["extra"].get("rounds")]
    if not per_run:
        return []
    medians = []
    for index in range(min(len(rounds) for rounds in per_run)):
        row: dict[str, Any] = {"round": index + 1}
        for key in ("seconds", "cpu_seconds", "live_messages", "gc_objects", "tree_calls", "rss_kb"):
            values = [rounds[index][key] for rounds in per_run if rounds[index].get(key) is not None]
            row[key] = statistics.median(values) if values else None
        row["time"] = row[metric]
        medians.append(row)
    return medians


# ----------------------------------------------------------------------------------------------------------------------
# targets (issue 14): every workload against its floor
# ----------------------------------------------------------------------------------------------------------------------

MEMORY_PER_CALL_TARGET = 3200  # bytes of peak RSS per agent call (the 0.0.x-era figure, "3.2 KB")
LINEAR_TOLERANCE = 1.10  # "no superlinear growth": the per-call time at 100k within 10% of the one at 10k


def _median(report: dict[str, Any], workload: str, impl: str) -> float | None:
    cell = report["workloads"].get(workload, {}).get("cells", {}).get(impl)
    return cell["median"] if cell and cell.get("status") == "ok" else None


def build_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target: what is compared with what, the two numbers, the ratio (or difference) and the verdict."""
    rows: list[dict[str, Any]] = []

    def size(workload: str) -> str:
        text = report["workloads"].get(workload, {}).get("size", "?")
        return " x ".join(f"{int(part):,}" for part in text.split("x")) if text[:1].isdigit() else text

    def ratio_row(
        label: str,
        workload: str,
        limit: float | None,
        floor_workload: str | None = None,
        floor_impl: str = "asyncio",
        ours_impl: str = "ours",
        floor_label: str = "asyncio",
    ) -> None:
        if workload not in report["workloads"] or (floor_workload or workload) not in report["workloads"]:
            return
        ours = _median(report, workload, ours_impl)
        floor = _median(report, floor_workload or workload, floor_impl)
        value = ours / floor if ours is not None and floor else None
        rows.append(
            {
                "label": label,
                "floor_label": floor_label,
                "floor": floor,
                "ours": ours,
                "kind": "ratio",
                "value": value,
                "target": f"<= {limit:g}x" if limit is not None else "none set",
                "met": None if value is None or limit is None else value <= limit,
            }
        )

    ratio_row(f"fan-out, {size('fanout_5k')} calls", "fanout_5k", 3)
    ratio_row(f"fan-out, {size('fanout_10k')} calls", "fanout_10k", 3)
    ratio_row(f"fan-out, {size('fanout_100k')} calls (one process)", "fanout_100k", 3)

    def growth_row(key: str, small: str, large: str, note: str) -> None:
        scaling = report["derived"].get(key)
        if not scaling:
            return
        value, linear = scaling["values"].get("ours"), scaling["linear"]
        floor_value = scaling["values"].get("asyncio")
        rows.append(
            {
                "label": f"fan-out growth t({size(large)})/t({size(small)}){note}",
                "floor_label": f"linear = {linear:g}",
                "floor": None,
                "floor_text": f"asyncio {floor_value:.2f}" if floor_value else "-",
                "ours": None,
                "kind": "plain",
                "value": value,
                "target": f"<= {linear * LINEAR_TOLERANCE:g} (linear +10%)",
                "met": None if value is None else value <= linear * LINEAR_TOLERANCE,
            }
        )

    growth_row("fanout_scaling_100k", "fanout_10k", "fanout_100k", "")
    ratio_row(f"fan-out, {size('fanout_10k_nogc')} calls, gc disabled (diagnostic)", "fanout_10k_nogc", None)
    ratio_row(f"fan-out, {size('fanout_100k_nogc')} calls, gc disabled (diagnostic)", "fanout_100k_nogc", None)
    growth_row("fanout_scaling_100k_nogc", "fanout_10k_nogc", "fanout_100k_nogc", ", gc disabled (diagnostic)")
    ratio_row(f"deep nesting, {size('nesting')} levels", "nesting", 3)
    ratio_row(f"replay, {size('replay')} (tokens x consumers)", "replay", 1.2, floor_label="hand-written replay buffer")
    ratio_row(
        f"freeze + hash, {size('hash')} nested messages", "hash", 1.3, floor_label="hand-written json.dumps + sha256"
    )
    ours, floor = _median(report, "import", "ours"), _median(report, "import", "asyncio")
    diff = ours - floor if ours is not None and floor is not None else None
    if "import" in report["workloads"]:
        rows.append(
            {
                "label": "import of the public API",
                "floor_label": "import asyncio + pydantic.BaseModel",
                "floor": floor,
                "ours": ours,
                "kind": "difference",
                "value": diff,
                "target": "<= +30 ms",
                "met": None if diff is None else diff <= 0.030,
            }
        )
    per_call = report["derived"].get("bytes_per_call", {}).get("values", {})
    value = per_call.get("ours")
    if per_call:
        rows.append(
            {
                "label": f"peak memory per agent call (fan-out {size('fanout_5k')})",
                "floor_label": "asyncio task",
                "floor": None,
                "floor_text": f"{per_call['asyncio']:,.0f} B" if "asyncio" in per_call else "-",
                "ours": None,
                "kind": "bytes",
                "value": value,
                "target": f"<= {MEMORY_PER_CALL_TARGET:,} B",
                "met": None if value is None else value <= MEMORY_PER_CALL_TARGET,
            }
        )
    ratio_row(
        f"store: persisting the messages of a {size('store')}-call run",
        "store",
        2,
        floor_label="sqlite3 executemany, one transaction",
    )
    run_with, run_without = _median(report, "store_run", "ours"), _median(report, "fanout_10k", "ours")
    store_floor = _median(report, "store", "asyncio")
    overhead = run_with - run_without if run_with is not None and run_without is not None else None
    if "store_run" in report["workloads"]:
        rows.append(
            {
                "label": "store attached to the run: t(run + store) - t(run)",
                "floor_label": "sqlite3 executemany",
                "floor": store_floor,
                "ours": overhead,
                "kind": "ratio",
                "value": overhead / store_floor if overhead is not None and store_floor else None,
                "target": "none set (what a user feels)",
                "met": None,
            }
        )
    ratio_row(
        f"notebook cell: {size('cell_fanout')} parallel calls",
        "cell_fanout",
        1.5,
        floor_workload="toplevel_fanout",
        floor_impl="ours",
        floor_label="the same calls outside a cell",
    )
    ratio_row(f"{size('toplevel_fanout')} parallel top-level calls", "toplevel_fanout", 3)
    ratio_row(
        f"MessageTree over {size('tree_rounds')} (rounds x calls)",
        "tree_rounds",
        None,
        floor_workload="rounds",
        floor_impl="ours",
        floor_label="the same rounds, no tree",
    )
    ratio_row(f"token relay, {size('relay')} tokens", "relay", None)
    ratio_row(f"fan-in, {size('fanin')} (producers x tokens)", "fanin", None)
    return rows


def _target_value_text(row: dict[str, Any]) -> str:
    value = row["value"]
    if value is None:
        return "n/a"
    if row["kind"] == "ratio":
        return f"{value:.2f}x"
    if row["kind"] == "difference":
        return f"{value * 1000:+.1f} ms"
    if row["kind"] == "bytes":
        return f"{value:,.0f} B"
    return f"{value:.2f}"


def render_targets(report: dict[str, Any]) -> list[str]:
    metric = "CPU time" if report.get("metric") == "cpu_seconds" else "wall time"
    lines = [
        f"Targets ({metric}; ours against its floor):",
        "",
        "| workload | floor | floor | ours | ours vs floor | target | met |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for row in report.get("targets", []):
        floor = row.get("floor_text") or (_fmt_seconds(row["floor"]) if row["floor"] is not None else "-")
        ours = _fmt_seconds(row["ours"]) if row["ours"] is not None else "-"
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        lines.append(
            f"| {row['label']} | {row['floor_label']} | {floor} | {ours} | {_target_value_text(row)} | "
            f"{row['target']} | {met} |"
        )
    return lines


def render_rounds(report: dict[str, Any]) -> list[str]:
    rounds = report["derived"].get("rounds")
    if not rounds:
        return []
    with_tree, without = rounds.get("tree_rounds", []), rounds.get("rounds", [])
    count = max(len(with_tree), len(without))
    shown = sorted({1, 2, *range(5, count + 1, 5), count} & set(range(1, count + 1)))
    lines = [
        "Rounds in one long-lived context (a kernel): a MessageTree created once, then rounds of a fan-out; "
        "probes after each round (medians over the runs):",
        "",
        "| round | with tree: round time | live Messages | tree call records | gc objects | RSS | "
        "no tree: round time | live Messages | gc objects | RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def part(rows: list[dict[str, Any]], number: int, tree: bool) -> list[str]:
        if number > len(rows):
            return ["-"] * (5 if tree else 4)
        row = rows[number - 1]
        cells = [_fmt_seconds(row["time"]), f"{row['live_messages']:,.0f}"]
        if tree:
            cells.append(f"{row['tree_calls']:,.0f}" if row["tree_calls"] is not None else "-")
        cells += [f"{row['gc_objects']:,.0f}", f"{row['rss_kb'] / 1024:,.0f} MB"]
        return cells

    for number in shown:
        lines.append(
            "| " + " | ".join([str(number), *part(with_tree, number, True), *part(without, number, False)]) + " |"
        )
    return lines


def _fmt_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def _fmt_ratio(num: float | None, den: float | None) -> str:
    if num is None or den is None or den <= 0 or num < 0:
        return "n/a"
    ratio = num / den
    return f"{ratio:.3g}x" if ratio < 10 else f"{ratio:.0f}x"


def render_markdown(report: dict[str, Any], impls: list[Impl], meta: dict[str, Any]) -> str:
    columns = [LABELS[k] for k in IMPLS]
    header = ["workload", *columns, "ours/asyncio", "ours/0.0.13", "ours/0.0.35"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    notes: list[str] = []
    present = {impl.key for impl in impls}

    def cell_text(cell: dict[str, Any] | None, key: str, workload: str) -> str:
        if cell is None or key not in present or cell["status"] == "skip":
            return "-"
        if cell["status"] == "ok":
            return _fmt_seconds(cell["median"])
        notes.append(f"- **{workload} / {LABELS[key]}: {cell['status']}** - {cell.get('note', '')}")
        return cell["status"]

    for name, data in report["workloads"].items():
        cells = data["cells"]
        row = [data["title"]]
        medians = {}
        for key in IMPLS:
            cell = cells.get(key)
            row.append(cell_text(cell, key, name))
            if cell and cell["status"] == "ok":
                medians[key] = cell["median"]
        for other in ("asyncio", "v0013", "v0035"):
            row.append(_fmt_ratio(medians.get("ours"), medians.get(other)))
        lines.append("| " + " | ".join(row) + " |")

    for key_name, fmt in (
        ("fanout_scaling", lambda v: f"{v:.2f}"),
        ("fanout_scaling_100k", lambda v: f"{v:.2f}"),
        ("fanout_scaling_100k_nogc", lambda v: f"{v:.2f}"),
        ("bytes_per_call", lambda v: f"{v:,.0f}"),
    ):
        derived = report["derived"].get(key_name)
        if not derived:
            continue
        values = derived["values"]
        row = [derived["title"]]
        for key in IMPLS:
            row.append(fmt(values[key]) if key in values else "-")
        for other in ("asyncio", "v0013", "v0035"):
            row.append(_fmt_ratio(values.get("ours"), values.get(other)))
        lines.append("| " + " | ".join(row) + " |")

    metric = "process CPU time" if report.get("metric") == "cpu_seconds" else "wall time"
    out = [
        f"MiniAgents benchmarks - {metric}, median of {meta['repeat']} run(s) per cell, each run a fresh process"
        f"{' (QUICK sizes)' if meta['quick'] else ''}; ratios < 1 mean ours is faster / smaller.",
        "",
        *render_targets(report),
        "",
        "All the measurements (`-`: not a workload of that implementation):",
        "",
        *lines,
        "",
    ]
    rounds = render_rounds(report)
    if rounds:
        out += [*rounds, ""]
    spreads = []
    for name, data in report["workloads"].items():
        for key, cell in data["cells"].items():
            if cell.get("status") == "ok" and len(cell["seconds"]) > 1 and cell["min"] > 0:
                spread = cell["max"] / cell["min"]
                if spread > 1.3:
                    spreads.append(f"{name}/{LABELS[key]} {spread:.2f}x")
    ours_cells = [
        c for d in report["workloads"].values() for k, c in d["cells"].items() if k == "ours" and c.get("api_import")
    ]
    if any(c["api_import"] != ["top-level"] for c in ours_cells):
        notes.append(
            "- ours: the 0.0.13-style names were imported from the submodules, NOT from the top-level `miniagents` "
            "package (expected only when --ours-python points at a 0.0.13 venv)"
        )
    if notes:
        out += ["Problems:", *sorted(set(notes)), ""]
    if spreads:
        out += [f"Noisy cells (max/min over runs > 1.3): {', '.join(spreads)}", ""]
    out.append(
        f"Python {meta['python']}, {meta['cpu_count']} CPUs, load average at start/end "
        f"{meta['loadavg_start']} / {meta.get('loadavg_end')}; sizes: "
        + ", ".join(f"{w.name}={meta['sizes'][w.name]}" for w in WORKLOADS if w.name in meta["sizes"])
    )
    for label, info in meta["impls"].items():
        if info["unavailable"]:
            out.append(f"- {label}: n/a ({info['unavailable']})")
        else:
            out.append(f"- {label}: {info['python']}")
    machine = meta.get("machine")
    if machine:
        out += ["", "Machine: " + "; ".join(f"{key} {value}" for key, value in machine.items())]
    return "\n".join(out) + "\n"


def machine_description(python: str) -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, RAM, OS, Python, the libraries that matter, the commit."""
    import platform  # pylint: disable=import-outside-toplevel

    def read(path: str) -> str:
        try:
            return Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    cpuinfo = read("/proc/cpuinfo")

    def cpu_field(name: str) -> str | None:
        return next(
            (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.split(":")[0].strip() == name),
            None,
        )

    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    hypervisor = "hypervisor" in (cpu_field("flags") or "").split()
    mem_kb = next(
        (int(line.split()[1]) for line in read("/proc/meminfo").splitlines() if line.startswith("MemTotal")), 0
    )
    os_name = next(
        (
            line.split("=", 1)[1].strip().strip('"')
            for line in read("/etc/os-release").splitlines()
            if line.startswith("PRETTY_NAME=")
        ),
        platform.system(),
    )
    versions = subprocess.run(
        [python, "-c", "import sqlite3, pydantic; print(pydantic.VERSION, sqlite3.sqlite_version)"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()

    def git(*args: str) -> str:
        result = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=False)
        return result.stdout.rstrip("\n")

    changed = git("status", "--porcelain", "--untracked-files=no", "--", "miniagents", "benchmarks")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "cpu": f"{models[0] if models else platform.processor() or 'unknown'}",
        "logical_cpus": os.cpu_count(),
        "cores": cpu_field("cpu cores"),
        "cpu_mhz": cpu_field("cpu MHz"),
        "cache": cpu_field("cache size"),
        "virtual_machine": hypervisor,
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "os": f"{os_name} (kernel {platform.release()}, {platform.machine()})",
        "python": f"{platform.python_implementation()} {platform.python_version()} ({python})",
        "pydantic": versions[0] if versions else None,
        "sqlite": versions[1] if len(versions) > 1 else None,
        "commit": git("rev-parse", "--short", "HEAD")
        + (f" + uncommitted changes in {', '.join(line[3:] for line in changed.splitlines())}" if changed else ""),
    }


def _loadavg() -> str | None:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return None


def select_workloads(only: str | None) -> list[Workload]:
    if not only:
        return list(WORKLOADS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    aliases = {"fanout": ["fanout_5k", "fanout_10k"], "memory": ["fanout_5k"], "scaling": ["fanout_5k", "fanout_10k"]}
    selected: list[str] = []
    for name in names:
        for real in aliases.get(name, [name]):
            if real not in WORKLOADS_BY_NAME:
                raise SystemExit(f"unknown workload {real!r}; known: {', '.join(WORKLOADS_BY_NAME)}")
            if real not in selected:
                selected.append(real)
    return [w for w in WORKLOADS if w.name in selected]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=None, help="runs per cell (default 5, 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="1 repeat and smaller sizes")
    parser.add_argument(
        "--only",
        help="comma-separated workloads: " + ", ".join(WORKLOADS_BY_NAME) + " (aliases: fanout, scaling, memory)",
    )
    parser.add_argument("--impls", help="comma-separated subset of: asyncio,ours,0.0.13,0.0.35 (default: all)")
    parser.add_argument("--size", action="append", default=[], metavar="WORKLOAD=SIZE", help="override a size")
    parser.add_argument("--output", help="write the markdown table to this file")
    parser.add_argument("--json", help="write raw results (every run) + report as JSON to this file")
    parser.add_argument(
        "--ours-python",
        help='interpreter for "ours" (used as is, WITHOUT the repo on PYTHONPATH); default: this interpreter '
        "with the repo root first on PYTHONPATH",
    )
    parser.add_argument(
        "--peer-pydantic",
        default="match",
        help="pydantic for the peer venvs: 'match' (default: the version 'ours' runs with), 'latest', or X.Y.Z",
    )
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help=f"default {DEFAULT_CACHE_DIR}")
    parser.add_argument("--rebuild-venvs", action="store_true", help="recreate the cached peer venvs")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run (default 900)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up import per implementation")
    parser.add_argument("--verbose", action="store_true", help="print worker stderr on failures")
    parser.add_argument(
        "--metric",
        choices=sorted(METRICS),
        default="wall",
        help="what the time cells show: wall (perf_counter, default) or cpu (process CPU time of the same region; "
        "steadier on a loaded machine). Both are always recorded in --json",
    )
    parser.add_argument("--from-json", metavar="FILE", help="only re-render the table from a previous --json file")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())

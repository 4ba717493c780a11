"""
Our package at an earlier commit against the working tree, in one run: every workload in fresh processes, the two
interleaved, medians of process CPU time (and peak-RSS growth per call for the fan-out).

    python benchmarks/compare_commits.py 469ff73            # the commit before the core redesign
    python benchmarks/compare_commits.py 469ff73 --repeat 7 --json before_after.json

The earlier commit is checked out into a temporary git worktree; both sides run the same workload code (this
directory's `workloads_ours.py` through `worker.py`), so only the package differs. Ratios < 1 mean the working tree
is faster / smaller.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WORKLOADS = [  # (workload, size, what)
    ("relay", "100000", "token relay, 100,000 tokens through 3 relays"),
    ("fanout", "5000", "fan-out, 5,000 parallel calls"),
    ("fanin", "200x500", "fan-in, 200 producers x 500 tokens"),
    ("nesting", "200", "deep nesting, 200 levels"),
    ("replay", "50000x10", "replay, 50,000 tokens x 10 consumers"),
    ("hash", "2000", "freeze + hash, 2,000 nested messages"),
    ("import", "1", "import of the public API"),
]


def run_worker(repo: Path, workload: str, size: str) -> dict:
    env = {"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [sys.executable, str(BENCH_DIR / "worker.py"), "ours", workload, size],
        capture_output=True,
        text=True,
        env=env,
        cwd=BENCH_DIR,
        check=False,
        timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{workload} at {repo} failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("commit", help="the earlier commit (anything `git worktree add` takes)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the raw measurements here")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    with tempfile.TemporaryDirectory(prefix="miniagents-before-") as tmp:
        before = Path(tmp) / "before"
        git = ["git", "-C", str(REPO_ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", str(before), args.commit], check=True)
        try:
            results = measure(before, args.repeat)
        finally:
            subprocess.run([*git, "remove", "--force", str(before)], check=False)
    print(f"\n{args.commit} (before) against the working tree (now): CPU time, median of {args.repeat} fresh runs\n")
    print("| workload | before | now | now / before |\n|---|---:|---:|---:|")
    for workload, size, what in WORKLOADS:
        cell = results[workload]
        b, n = statistics.median(cell["before"]), statistics.median(cell["now"])
        print(f"| {what} | {b * 1000:.1f} ms | {n * 1000:.1f} ms | {n / b:.2f}x |")
        if workload == "fanout":
            rb, rn = statistics.median(cell["before_rss"]), statistics.median(cell["now_rss"])
            per_b, per_n = rb * 1024 / int(size), rn * 1024 / int(size)
            print(f"| peak-RSS growth per call, {what} | {per_b:,.0f} B | {per_n:,.0f} B | {per_n / per_b:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"commit": args.commit, "repeat": args.repeat, "results": results}, indent=1))


def measure(before: Path, repeat: int) -> dict:
    results: dict = {}
    for workload, size, _ in WORKLOADS:
        cell = results[workload] = {"before": [], "now": [], "before_rss": [], "now_rss": []}
        for index in range(repeat):
            order = [("before", before), ("now", REPO_ROOT)]
            for side, repo in order if index % 2 == 0 else order[::-1]:  # interleaved, alternating who goes first
                data = run_worker(repo, workload, size)
                cell[side].append(data["cpu_seconds"])
                if data.get("rss_before_kb") is not None:
                    cell[f"{side}_rss"].append(data["peak_rss_kb"] - data["rss_before_kb"])
        print(f"{workload}: done", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()

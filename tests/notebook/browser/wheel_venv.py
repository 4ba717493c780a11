"""
The project as a user installs it: a wheel built from the working tree, installed (not editable) into a
venv of its own together with JupyterLab, cached per wheel content under ~/.cache.

Acceptance 4 of issue 4 asks that a *built wheel* renders the widgets, so nothing here may see the source
tree: the venv gets `miniagents[jupyter]` from the wheel file only, and `verify_installed_wheel` checks
that the installed package is byte for byte the wheel's.

A venv for a new wheel is built from scratch when no earlier one exists (always the case on a fresh CI
machine, or with MINIAGENTS_BROWSER_VENV_FRESH=1); otherwise the newest cached venv is copied and its
miniagents is replaced by the new wheel, which takes seconds instead of a minute of pip.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CACHE_ROOT = Path(os.environ.get("MINIAGENTS_BROWSER_VENV_CACHE", Path.home() / ".cache" / "miniagents-browser-venv"))
FORCE_FRESH = os.environ.get("MINIAGENTS_BROWSER_VENV_FRESH", "") not in ("", "0")
# What the venv holds besides the wheel: the front end and the kernel side of the widgets.
LAB_REQUIREMENTS = ("jupyterlab>=4.2,<5", "notebook>=7,<8", "ipykernel>=6.29", "anywidget>=0.9", "ipywidgets>=8.1")
READY_STAMP = "miniagents-browser-venv.json"
IN_USE_LOCK = ".in-use"  # held shared by every test run using the venv; pruning needs it exclusively
KEEP_CACHED_VENVS = 3
INSTALL_TIMEOUT_S = 600


class VenvBuildError(RuntimeError):
    """Building the wheel or installing it into the venv failed; the message holds pip's output."""


@dataclass
class LabVenv:
    """
    A ready venv. `how` says how it was made: "reused", "copied" or "fresh". It is held in use (so no
    concurrent run prunes it) until `release()`.
    """

    path: Path
    wheel_digest: str
    how: str
    _in_use: IO[str] | None = None

    def release(self) -> None:
        if self._in_use is not None:
            self._in_use.close()  # closing drops the shared lock
            self._in_use = None

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def bin_dir(self) -> Path:
        return self.path / "bin"

    @property
    def site_packages(self) -> Path:
        return next((self.path / "lib").glob("python3*/site-packages"))


def build_wheel(out_dir: Path) -> Path:
    """Build the project's wheel into `out_dir` with pip (hatchling backend) and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q"]
    _run([*pip_wheel, "-w", str(out_dir), str(PROJECT_ROOT)], what="building the miniagents wheel")
    wheels = sorted(out_dir.glob("miniagents-*.whl"))
    if len(wheels) != 1:
        raise VenvBuildError(f"expected one miniagents wheel in {out_dir}, found {wheels}")
    return wheels[0]


def ensure_lab_venv(wheel: Path) -> LabVenv:
    """
    Return a venv holding exactly `wheel` (with its `jupyter` extra) and JupyterLab: the cached one for
    this wheel content if ready, else a new one. Raises VenvBuildError when pip fails or the installed
    package differs from the wheel.
    """
    family = _requirements_family()
    digest = hashlib.sha256(wheel.read_bytes() + family.encode()).hexdigest()[:16]
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    venv_dir = CACHE_ROOT / digest
    with _cache_lock():
        if _stamp(venv_dir) is not None:
            (venv_dir / READY_STAMP).touch()
            return LabVenv(venv_dir, digest, how="reused", _in_use=_hold_in_use(venv_dir))
        _remove_half_built_venvs()
        template = None if FORCE_FRESH else _newest_ready_venv(family)
        try:
            if template is None:
                _create_fresh_venv(venv_dir, wheel)
            else:
                _copy_venv_with_new_wheel(template, venv_dir, wheel)
            verify_installed_wheel(venv_dir, wheel)
        except BaseException:
            shutil.rmtree(venv_dir, ignore_errors=True)
            raise
        (venv_dir / READY_STAMP).write_text(json.dumps({"wheel": wheel.name, "family": family}))
        venv = LabVenv(venv_dir, digest, how="fresh" if template is None else "copied", _in_use=_hold_in_use(venv_dir))
        _prune_unused_venvs(keep=venv_dir)
        return venv


def verify_installed_wheel(venv_dir: Path, wheel: Path) -> None:
    """Raise VenvBuildError unless the venv's miniagents package has exactly the wheel's files and bytes."""
    site_packages = next((venv_dir / "lib").glob("python3*/site-packages"))
    with zipfile.ZipFile(wheel) as archive:
        expected = {name: archive.read(name) for name in archive.namelist() if name.startswith("miniagents/")}
    installed = {
        path.relative_to(site_packages).as_posix()
        for path in (site_packages / "miniagents").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    differing = sorted(name for name, data in expected.items() if (site_packages / name).read_bytes() != data)
    extra = sorted(installed - set(expected))
    if differing or extra or not expected:
        raise VenvBuildError(f"installed miniagents differs from {wheel.name}: changed {differing}, extra {extra}")


def _create_fresh_venv(venv_dir: Path, wheel: Path) -> None:
    _run([sys.executable, "-m", "venv", str(venv_dir)], what="creating the fresh venv")
    _pip_install(venv_dir, f"{wheel}[jupyter]", *LAB_REQUIREMENTS)


def _copy_venv_with_new_wheel(template: Path, venv_dir: Path, wheel: Path) -> None:
    # Only `python -m ...` is ever run from these venvs, so the absolute shebangs of the copied
    # bin/ scripts (still naming the template) do not matter.
    shutil.copytree(template, venv_dir, symlinks=True, ignore=shutil.ignore_patterns(READY_STAMP, IN_USE_LOCK))
    _pip_install(venv_dir, "--force-reinstall", "--no-deps", str(wheel))
    _pip_install(venv_dir, f"{wheel}[jupyter]")  # any dependency the new wheel added


def _pip_install(venv_dir: Path, *arguments: str) -> None:
    pip_install = [str(venv_dir / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    _run([*pip_install, *arguments], what=f"pip install {' '.join(arguments)} into {venv_dir}")


def _requirements_family() -> str:
    """Venvs of one family differ only in the miniagents wheel: same Python, same JupyterLab requirements."""
    return f"{sys.version_info[:3]} {' '.join(LAB_REQUIREMENTS)}"


def _stamp(venv_dir: Path) -> dict[str, str] | None:
    try:
        return json.loads((venv_dir / READY_STAMP).read_text())
    except (OSError, ValueError):
        return None


def _ready_venvs() -> list[Path]:
    """Ready venvs in the cache, most recently used first."""
    ready = [path for path in CACHE_ROOT.iterdir() if _stamp(path) is not None]
    return sorted(ready, key=lambda path: (path / READY_STAMP).stat().st_mtime, reverse=True)


def _newest_ready_venv(family: str) -> Path | None:
    return next((path for path in _ready_venvs() if (_stamp(path) or {}).get("family") == family), None)


def _hold_in_use(venv_dir: Path) -> IO[str]:
    in_use = open(venv_dir / IN_USE_LOCK, "a")  # stays open (and locked) until LabVenv.release()
    fcntl.flock(in_use, fcntl.LOCK_SH)
    return in_use


def _prune_unused_venvs(keep: Path) -> None:
    """Keep the KEEP_CACHED_VENVS most recently used venvs, and any venv a running test run holds."""
    others = [path for path in _ready_venvs() if path != keep]
    for stale in others[KEEP_CACHED_VENVS - 1 :]:
        with open(stale / IN_USE_LOCK, "a") as in_use:
            try:
                fcntl.flock(in_use, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a concurrent run is using it
            shutil.rmtree(stale, ignore_errors=True)


def _remove_half_built_venvs() -> None:
    """Under the cache lock nothing is being built, so a venv without its ready stamp is a leftover."""
    for path in CACHE_ROOT.iterdir():
        if path.is_dir() and _stamp(path) is None:
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _cache_lock() -> Iterator[None]:
    """Serialise venv builds between concurrent test runs on one machine."""
    with open(CACHE_ROOT / ".lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _run(command: list[str], what: str) -> None:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    with tempfile.TemporaryFile("w+") as output:
        try:
            completed = subprocess.run(
                command, stdout=output, stderr=subprocess.STDOUT, env=env, timeout=INSTALL_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise VenvBuildError(f"{what} took over {INSTALL_TIMEOUT_S}s") from exc
        if completed.returncode != 0:
            output.seek(0)
            raise VenvBuildError(f"{what} failed ({completed.returncode})\n{output.read()[-4000:]}")

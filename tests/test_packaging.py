"""The wheel carries every sub-package, and the repo root stays safe to run Python from.

setuptools silently drops nested packages that `packages` does not list, and a `platform/`
package at the repo root would shadow the standard library module torch imports; both broke
installs before (../shared/DESIGN.md)."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"platform": "nasforge/platform", "search_spaces": "nasforge/search_spaces", "tasks": "nasforge/tasks"}


def test_platform_folder_is_not_a_regular_package():
    assert not (REPO / "platform" / "__init__.py").exists()


def test_stdlib_platform_and_torch_import_from_the_repo_root():
    r = subprocess.run([sys.executable, "-c", "import platform, torch; print(platform.system())"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("Linux", "Darwin", "Windows")


@pytest.mark.slow
def test_wheel_contains_every_module_and_the_console_script(tmp_path):
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(REPO)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    wheel = next(tmp_path.glob("nasforge-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"{dest}/{py.relative_to(REPO / src).as_posix()}"
        for src, dest in FOLDERS.items()
        for py in (REPO / src).rglob("*.py")
        if "__pycache__" not in py.parts
    }
    missing = sorted(expected - names)
    assert not missing, f"modules missing from the wheel: {missing}"
    assert "nasforge/platform/__init__.py" not in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "nasforge = nasforge.platform.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()

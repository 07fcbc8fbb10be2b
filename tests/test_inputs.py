"""Every bad input gets its defined outcome: an error before anything is written,
a warning, or a fix. Run folders, storages and registries are real (digits, NAS-Bench-201)."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nasforge.platform.cli import main

from tiny_sweeps import REPO, quickstart_file


def _cli(args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err.strip()


def _one_line(err: str) -> bool:
    return err.startswith("nasforge: error:") and "\n" not in err and "Traceback" not in err


# ----------------------------------------------------------------------------- the run folder
@pytest.mark.parametrize("preflight", [True, False])
def test_a_root_that_is_a_file_is_one_line_and_exit_2(tmp_path, capsys, preflight):
    (tmp_path / "afile").write_text("x")
    path = quickstart_file(tmp_path)
    code, out, err = _cli(["sweep", "run", path, "--root", tmp_path / "afile" / "runs"]
                          + ([] if preflight else ["--no-preflight"]), capsys)
    assert code == 2 and _one_line(err) and "--root:" in err and "is a file" in err, err
    assert (tmp_path / "afile").read_text() == "x"


def test_a_root_on_a_read_only_file_system_is_one_line_and_exit_2(tmp_path, capsys):
    if not os.path.isdir("/sys"):
        pytest.skip("needs /sys (sysfs: no file can be made there, not even by root)")
    code, out, err = _cli(["sweep", "run", quickstart_file(tmp_path), "--root", "/sys/nasforge-runs"], capsys)
    assert code == 2 and _one_line(err) and "--root: '/sys/nasforge-runs/tiny' is not writable" in err, err


def test_an_unreachable_storage_is_one_line_before_anything_is_written(tmp_path, capsys):
    pytest.importorskip("psycopg2")
    url = "postgresql://nobody@127.0.0.1:1/none"  # port 1: nothing listens, the refusal is immediate
    code, out, err = _cli(["sweep", "run", quickstart_file(tmp_path), "--root", tmp_path / "runs",
                           "--storage", url], capsys)
    assert code == 2 and _one_line(err) and "storage: cannot open" in err, err
    assert not (tmp_path / "runs").exists()  # no sweep.yaml, no empty study.journal


@pytest.mark.parametrize("preflight", [True, False])
def test_an_sqlite_storage_in_a_missing_folder_is_one_line_and_writes_nothing(tmp_path, capsys, preflight):
    url = f"sqlite:///{tmp_path}/no-such-folder/x.db"  # SQLite makes the file, never its folder
    code, out, err = _cli(["sweep", "run", quickstart_file(tmp_path), "--root", tmp_path / "runs", "--storage", url]
                          + ([] if preflight else ["--no-preflight"]), capsys)
    assert code == 2 and _one_line(err) and "storage: cannot open" in err and "does not exist" in err, err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "no-such-folder").exists()


# ----------------------------------------------------------------------------- the sweep file
def test_a_key_given_twice_is_refused_with_its_line(tmp_path, capsys):
    path = tmp_path / "dup.yaml"
    text = quickstart_file(tmp_path, name="dup").read_text()
    path.write_text(text.replace("budget:\n  trials: 2\n", "budget:\n  trials: 2\n  trials: 50\n"))
    assert "trials: 50" in path.read_text()
    code, out, err = _cli(["sweep", "check", path, "--root", tmp_path / "runs"], capsys)
    assert code == 2 and _one_line(err) and "not valid YAML (line" in err and "duplicate key 'trials'" in err, err
    assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------- reading results back
@pytest.fixture(scope="module")
def nb201_run(nb201_csv, tmp_path_factory) -> Path:
    """A finished 3-trial NAS-Bench-201 sweep whose recorded data path no longer resolves (the
    table was reached through a link that is gone, as on another machine)."""
    tmp = tmp_path_factory.mktemp("nb201-elsewhere")
    link = tmp / "table.csv"
    link.symlink_to(nb201_csv)
    data = yaml.safe_load((REPO / "sweeps" / "nb201_cifar10.yaml").read_text())
    data.update(name="elsewhere", strategy={"name": "random"}, budget={"trials": 3})
    data["task"]["data"]["path"] = str(link)
    path = tmp / "elsewhere.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["sweep", "run", str(path), "--root", str(tmp / "runs"), "--no-progress"]) == 0
    link.unlink()
    return tmp / "runs"


@pytest.mark.parametrize("command", [["sweep", "status"], ["sweep", "best", "--json"], ["report"]])
def test_looking_at_results_never_needs_the_training_data(nb201_run, tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)  # another folder: no ../shared beside it
    monkeypatch.setenv("NASFORGE_DATA", str(tmp_path / "nothing"))
    args = [*command, "elsewhere", "--root", nb201_run]
    if command == ["report"]:
        args += ["-o", tmp_path / "r.html"]
    code, out, err = _cli(args, capsys)
    assert code == 0, err
    assert "needs a local folder or zip" not in err and "does not exist" not in err
    if "--json" in command:
        assert json.loads(out)[0]["values"]["val_acc_12ep"] > 0


def test_sweep_best_json_into_a_closed_pipe_ends_quietly(nb201_run, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "nasforge.platform.cli", "sweep", "best", "elsewhere", "--json",
                          "--root", str(nb201_run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         cwd=tmp_path)
    p.stdout.close()  # like `| head` that has read what it wanted: every write now meets EPIPE
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err


# ----------------------------------------------------------------------------- the registry
@pytest.fixture(scope="module")
def registry(quick_runs, tmp_path_factory) -> Path:
    from nasforge.platform.registry import promote

    reg = tmp_path_factory.mktemp("inputs-registry")
    promote("quickstart", best=True, aliases=["best"], root=str(quick_runs), registry=reg)
    return reg


def _copy(registry: Path, tmp_path: Path) -> Path:
    shutil.copytree(registry, tmp_path / "registry")
    return tmp_path / "registry"


def test_promoting_the_same_trial_twice_makes_no_second_version(registry, quick_runs, tmp_path, capsys):
    from nasforge.platform.registry import Registry

    reg = _copy(registry, tmp_path)
    code, out, err = _cli(["promote", "quickstart", "--best", "--alias", "production", "--root", quick_runs,
                           "--registry", reg], capsys)
    assert code == 0, err
    assert "is already quickstart:v1; no new version (aliases: production)" in out
    assert [v.version for v in Registry(reg).versions("quickstart")] == ["v1"]
    assert Registry(reg).resolve("quickstart:production").version == "v1"


def test_registry_show_flags_a_tampered_file(registry, tmp_path, capsys):
    reg = _copy(registry, tmp_path)
    meta = reg / "quickstart" / "versions" / "v1" / "model.json"
    meta.write_text(meta.read_text().replace('"num_classes": 10', '"num_classes": 9'))
    code, out, err = _cli(["registry", "show", "quickstart:v1", "--registry", reg], capsys)
    assert code == 1 and "integrity: FAILED" in out and "model.json failed its integrity check" in out
    code, out, err = _cli(["registry", "show", "quickstart:v1", "--json", "--registry", reg], capsys)
    assert code == 1 and json.loads(out)["integrity"].startswith("FAILED")
    code, out, err = _cli(["registry", "show", "quickstart:v1", "--registry", registry], capsys)
    assert code == 0 and "integrity: ok" in out


def test_every_registry_file_has_the_same_mode(registry):
    mask = os.umask(0)
    os.umask(mask)
    modes = {str(p.relative_to(registry)): stat.S_IMODE(p.stat().st_mode)
             for p in registry.rglob("*") if p.is_file()}
    assert any(k.endswith("MANIFEST.json") for k in modes) and any("aliases" in k for k in modes)
    assert set(modes.values()) == {0o666 & ~mask}, modes


def test_export_to_an_unwritable_path_or_a_folder_is_one_line(registry, tmp_path, capsys):
    for out, says in ((tmp_path, "is a folder"), (Path("/sys/m.pt"), "-o: '/sys' is not writable")):
        code, _, err = _cli(["registry", "export", "quickstart:best", "--format", "torchscript", "-o", out,
                             "--registry", registry], capsys)
        assert code == 2 and _one_line(err) and says in err, err


def test_onnx_export_without_the_export_extra_says_how_to_install_it(registry, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as after the README's base install
    code, _, err = _cli(["registry", "export", "quickstart:best", "--format", "onnx", "-o", tmp_path / "m.onnx",
                         "--registry", registry], capsys)
    assert code == 2 and _one_line(err) and "pip install 'nasforge[export]'" in err, err
    assert not (tmp_path / "m.onnx").exists()


def test_an_image_folder_tree_reads_the_same_as_a_folder_and_as_a_zip_of_it(tmp_path, cifar10_zip):
    """A user's CIFAR-10-style tree (``train/<class>/<image>``, real JPEGs from the shared zip)
    gives the same arrays and labels from a folder and from a zip with one top folder; a path that
    is neither is one line naming the data set."""
    import zipfile

    import numpy as np

    from nasforge.tasks.cifar10 import read_image_folder

    tree = tmp_path / "tree"
    with zipfile.ZipFile(cifar10_zip) as zf:
        names = [n for n in zf.namelist() if n.lower().endswith((".jpg", ".jpeg", ".png"))]
        picked = [n for n in names if "/train/" in f"/{n}"][:12] + [n for n in names if "/test/" in f"/{n}"][:4]
        for n in picked:
            split, cls, fn = n.split("/")[-3:]
            (tree / split / cls).mkdir(parents=True, exist_ok=True)
            (tree / split / cls / fn).write_bytes(zf.read(n))
    packed = tmp_path / "tree.zip"
    with zipfile.ZipFile(packed, "w") as zf:
        for f in sorted(tree.rglob("*.*")):
            zf.write(f, "top/" + f.relative_to(tree).as_posix())
    a, b = read_image_folder(str(tree)), read_image_folder(str(packed))
    assert a.keys() == b.keys() == {"train", "test"}
    for split in a:
        assert np.array_equal(a[split][0], b[split][0]) and np.array_equal(a[split][1], b[split][1])
    assert a["train"][0].shape == (12, 32, 32, 3) and a["train"][0].dtype == np.uint8
    with pytest.raises(FileNotFoundError, match="CIFAR-10 path .* is neither a folder nor a zip"):
        read_image_folder(str(tmp_path / "missing"))

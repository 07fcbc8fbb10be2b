"""Bring your own model, data and search space.

The user project is `examples/digitlab` (its own package: a LightningModule taking the searched
network as ``backbone``, a LightningDataModule, a `Space` subclass, a sweep file using ``params``),
copied into the test's folder and run from there, as a user would. Bad input is one line, exit 2,
nothing written; the folder data sets read real images made from the shared CIFAR-10 and ISBI zips.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from nasforge.platform.cli import main

from tiny_sweeps import REPO

EXAMPLE = REPO / "examples" / "digitlab"
NASFORGE = Path(sys.executable).with_name("nasforge")


def project(tmp_path: Path, **overrides) -> Path:
    """A copy of the example project; dotted ``overrides`` change its sweep.yaml (None deletes)."""
    dest = tmp_path / "proj"
    if not dest.exists():
        shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "runs", "registry"))
    data = yaml.safe_load((EXAMPLE / "sweep.yaml").read_text())
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split("/") if "/" in dotted else dotted.split(".")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    (dest / "sweep.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def env(**extra) -> dict[str, str]:
    e = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", **extra}
    e.pop("PYTHONPATH", None)
    return {**e, **extra}


def params(**specs) -> list:
    """The example's space with ``params`` options replaced."""
    return [{"class_path": "digitlab.space.TinyConvSpace", "options": {"widths": [8], "max_depth": 1}},
            {"name": "params", "options": specs}]


# ----------------------------------------------------------------------------- bad input (must-show 5)
BAD = [
    ({"task.model.class_path": "nopkg.models.Net"},
     "task.model.class_path: cannot import 'nopkg.models.Net': ModuleNotFoundError: No module named 'nopkg'"),
    ({"task.model.class_path": "digitlab.module.NoSuchModule"},
     "cannot import 'digitlab.module.NoSuchModule': AttributeError"),
    ({"space": [{"class_path": "digitlab.nospace.Space"}]},
     "space[0].class_path: cannot import 'digitlab.nospace.Space': ModuleNotFoundError"),
    ({"task.model.init_args": {"dropout": 0.5}},
     "task.model.init_args: DigitClassifier: Option 'dropout' is not accepted"),
    ({"task.data.init_args": {"batch_size": "large"}},
     'task.data.init_args: DigitsData: Parser key "batch_size": Expected a <class \'int\'>. Got value: large'),
    ({"space": params(**{"model.init_args.learning_rate": {"float": [0.1, 1.0]}})},
     "'model.init_args.learning_rate' is not in the resolved config; model.init_args has lr, optimizer, momentum"),
    ({"space": params(**{"trainer.epochs": {"int": [1, 2]}})}, "'trainer.epochs' is not in the resolved config"),
    ({"space": params(**{"model.init_args.lr": {"float": [0.1, 0.001]}})},
     "params.model.init_args.lr: low 0.1 > high 0.001"),
    ({"space": params(**{"model.init_args.lr": {"float": [0.0, 0.1], "log": True}})},
     "params.model.init_args.lr: a log scale needs low > 0, got 0.0"),
    ({"space": params(**{"data.init_args.batch_size": {"choice": [16, "big"]}})},
     "space data.init_args.batch_size='big': task.data.init_args: DigitsData: Parser key \"batch_size\""),
    ({"space": params(**{"model.init_args.momentum": {"float": [0.8, 0.9], "when": {"model.init_args.optim": "sgd"}}})},
     "when names 'model.init_args.optim', which is not another declared path"),
]


@pytest.mark.parametrize("overrides, expect", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, monkeypatch, overrides, expect):
    proj = project(tmp_path, **overrides)
    monkeypatch.chdir(proj)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the sweep puts its folder first; undo after the test
    code = main(["sweep", "run", "sweep.yaml", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert expect in err, err
    assert not (proj / "runs").exists()


def test_a_class_that_does_not_import_is_one_line_in_a_real_process(tmp_path):
    proj = project(tmp_path, **{"task.data.class_path": "digitlab.data.Missing"})
    r = subprocess.run([str(NASFORGE), "sweep", "run", "sweep.yaml"], cwd=proj, capture_output=True, text=True,
                       env=env())
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == ("nasforge: error: task.data.class_path: cannot import 'digitlab.data.Missing': "
                                "AttributeError: module 'digitlab.data' has no attribute 'Missing'")
    assert not (proj / "runs").exists()


def test_params_space_is_an_ordinary_space():
    """Declared once: Optuna suggestions, the controller's decisions, validation and a genotype that
    round-trips (TPE, the controller and evolution all search it through these)."""
    import optuna

    from nasforge.search_spaces import SampleValidationError, create_space

    space = create_space("params", **{
        "model.init_args.lr": {"float": [1e-4, 1e-1], "log": True},
        "model.init_args.optimizer": {"choice": ["sgd", "adamw"]},
        "model.init_args.momentum": {"float": [0.8, 0.99], "when": {"model.init_args.optimizer": "sgd"}},
        "trainer.max_epochs": {"int": [5, 20]},
    })
    assert [d.label for d in space.decisions()] == ["model.init_args.lr", "model.init_args.optimizer",
                                                      "model.init_args.momentum", "trainer.max_epochs"]
    # the order does not depend on the options' order (genotypes are stored with sorted keys)
    again = create_space("params", **dict(sorted(space.options.items())))
    assert again.labels() == space.labels()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(6):
        sample = space.suggest(study.ask())
        assert ("model.init_args.momentum" in sample) == (sample["model.init_args.optimizer"] == "sgd")
        assert space.from_json(space.to_json(sample)) == space.validate(sample)
    with pytest.raises(SampleValidationError, match="outside"):
        space.validate({"model.init_args.lr": 1.0, "model.init_args.optimizer": "adamw", "trainer.max_epochs": 5})
    assert space.paths()["trainer.max_epochs"] == "trainer.max_epochs"


# ----------------------------------------------------------------------------- must-show 1
@pytest.mark.slow
def test_example_project_runs_with_two_workers_promotes_and_loads_in_a_fresh_process(tmp_path):
    """The first trials wait at the run folder's HOLD until both workers hold one (event-driven:
    a worker that starts late cannot find every trial already taken by the other)."""
    from sweep_workers import hold, release_held

    proj = project(tmp_path)
    e = env(NASFORGE_REGISTRY=str(tmp_path / "registry"))
    journal = f"journal://{proj / 'runs' / 'digitlab' / 'study.journal'}"
    held = hold(proj / "runs", "digitlab")
    sweep = subprocess.Popen([str(NASFORGE), "sweep", "run", "sweep.yaml", "--workers", "2", "--no-progress"],
                             cwd=proj, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=e)
    out = release_held(sweep, held, "digitlab", journal, count=2, timeout=600)  # one trial per worker
    assert sweep.returncode == 0, out[-4000:]

    import optuna
    import torch

    from nasforge.platform.engine.storage import create_storage

    study = optuna.load_study(study_name="digitlab", storage=create_storage(journal))
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 4 and {t.user_attrs.get("worker") for t in done} == {"w0", "w1"}
    kept = [t for t in done if os.path.exists(t.user_attrs["checkpoint"])]
    assert len(kept) == 3  # checkpoints.keep_top's default: the best 3 of the 4 keep theirs
    for t in kept:
        s = t.user_attrs["sample"]
        ckpt = torch.load(t.user_attrs["checkpoint"], map_location="cpu", weights_only=False)
        hp, dm_hp = ckpt["hyper_parameters"], ckpt["datamodule_hyper_parameters"]
        assert hp["lr"] == pytest.approx(s["model.init_args.lr"])  # params reach the module
        assert hp["optimizer"] == s["model.init_args.optimizer"] and hp["num_classes"] == 10
        assert dm_hp["batch_size"] == s["data.init_args.batch_size"]  # ... the data module
        assert t.user_attrs["epochs_run"] == s["trainer.max_epochs"]  # ... and the trainer
        assert any(k.startswith("backbone.") for k in ckpt["state_dict"])  # the injected network trained
        assert t.user_attrs["metrics"]["cost/params"] > 0

    r = subprocess.run([str(NASFORGE), "promote", "digitlab", "--best", "--alias", "best"], cwd=proj,
                       capture_output=True, text=True, env=e)
    assert r.returncode == 0, r.stderr
    # a fresh process elsewhere, with only the example package on its path
    code = ("import json, torch; from nasforge.platform.registry import load, evaluate; "
            "m = load('digitlab:best'); out = m(torch.zeros(2, 1, 8, 8)); "
            "print(json.dumps({'type': type(m).__name__, 'shape': list(out.shape), 'acc': evaluate('digitlab:best')['val/acc']}))")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True,
                       env={**e, "PYTHONPATH": str(proj)})
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    best = study.best_trial
    assert out["type"] == "Sequential" and out["shape"] == [2, 10]
    assert out["acc"] == pytest.approx(best.value, abs=1e-6)  # the recorded metric, recomputed

    # the same load where the user's code is not importable: one line that says what to do
    meta_dir = tmp_path / "registry" / "digitlab" / "versions" / "v1"
    meta = json.loads((meta_dir / "model.json").read_text())
    assert meta["task"]["class_path"] == "digitlab.module.DigitClassifier"
    shutil.move(str(proj), str(tmp_path / "moved"))
    r = subprocess.run([str(NASFORGE), "registry", "evaluate", "digitlab:best"], cwd=elsewhere,
                       capture_output=True, text=True, env=e)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "cannot import" in r.stderr and "digitlab" in r.stderr and "ONNX" in r.stderr


# ----------------------------------------------------------------------------- must-show 2
@pytest.mark.slow
def test_pure_hyperparameter_sweep_of_a_module_without_network(tmp_path, monkeypatch):
    """Through the Python entry point, from a dict, as in a notebook."""
    import nasforge.platform.engine as nf
    from nasforge.platform.registry import load

    proj = project(tmp_path, **{
        "task.model": {"class_path": "digitlab.module.PlainClassifier"},
        "space": [{"name": "params", "options": {"model.init_args.hidden": {"choice": [4, 16]},
                                                 "model.init_args.lr": {"float": [0.01, 0.1], "log": True}}}],
        "budget.trials": 2, "trainer.max_epochs": 1})
    monkeypatch.chdir(proj)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("NASFORGE_REGISTRY", str(tmp_path / "registry"))
    study = nf.run(yaml.safe_load((proj / "sweep.yaml").read_text()), root="runs", show_progress=False)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert nf.run(yaml.safe_load((proj / "sweep.yaml").read_text()), root="runs", show_progress=False,
                  trials=3).trials[-1].state.name == "COMPLETE"  # the same call resumes up to the new budget
    import torch

    for t in study.trials[:2]:
        ckpt = torch.load(t.user_attrs["checkpoint"], map_location="cpu", weights_only=False)
        assert ckpt["hyper_parameters"]["hidden"] == t.params["model.init_args.hidden"]
        assert ckpt["state_dict"]["backbone.1.weight"].shape[0] == t.params["model.init_args.hidden"]
    from nasforge.platform.registry.promote import promote

    promote("digitlab", best=True, root="runs", link_wandb=False)
    model = load("digitlab:latest")  # the user's module itself, rebuilt from its class path and init args
    assert type(model).__name__ == "PlainClassifier" and model(torch.zeros(1, 1, 8, 8)).shape == (1, 10)


# ----------------------------------------------------------------------------- must-show 3
@pytest.mark.slow
def test_ddp_trial_of_a_user_module(tmp_path, monkeypatch):
    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.sweep import run_sweep

    proj = project(tmp_path, **{"budget.trials": 1, "trainer.devices": 2, "trainer.max_epochs": 1,
                                "space": params(**{"model.init_args.lr": {"float": [0.01, 0.02]}})})
    monkeypatch.chdir(proj)
    monkeypatch.setattr(sys, "path", list(sys.path))
    study = run_sweep(load_sweep("sweep.yaml"), root="runs", show_progress=False)
    (trial,) = study.trials
    assert trial.state.name == "COMPLETE", trial.user_attrs.get("fail_reason")
    ranks = [json.loads((proj / "runs" / "digitlab" / "trials" / "0" / "ddp" / f"rank{r}.json").read_text())
             for r in (0, 1)]
    assert ranks[0]["pid"] != ranks[1]["pid"] and ranks[0]["world_size"] == 2
    assert trial.user_attrs["ddp_outcome"]["state"] == "COMPLETE"


# ----------------------------------------------------------------------------- must-show 4
def _cifar_folder(zip_path: Path, dest: Path, classes: list[str], per_class: int = 12, size: int = 64) -> None:
    """train/<class>/*.png: real CIFAR-10 images upscaled to ``size`` x ``size``."""
    from PIL import Image
    import io

    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        for c in classes:
            picked = [n for n in names if f"train/{c}/" in n and n.endswith((".jpg", ".png"))][:per_class]
            (dest / "train" / c).mkdir(parents=True, exist_ok=True)
            for i, n in enumerate(picked):
                with Image.open(io.BytesIO(zf.read(n))) as im:
                    im.convert("RGB").resize((size, size)).save(dest / "train" / c / f"{i}.png")


def _imagefolder_sweep(proj: Path, folder: Path, name: str) -> None:
    data = {"name": name, "seed": 0,
            "task": {"name": "classification",
                     "data": {"name": "imagefolder", "path": str(folder), "val_fraction": 0.25},
                     "options": {"batch_size": 16}},
            "space": [{"name": "convnet", "options": {"stages": 2, "widths": [4, 8], "max_depth": 1}}],
            "budget": {"trials": 1}, "pruner": {"name": "none"},
            "trainer": {"accelerator": "cpu", "max_epochs": 1, "cpu_threads": 1}, "tracking": {"mode": "disabled"}}
    (proj / f"{name}.yaml").write_text(yaml.safe_dump(data))


@pytest.mark.slow
def test_imagefolder_head_and_flops_come_from_the_data_and_a_changed_folder_is_read_again(
        tmp_path, monkeypatch, cifar10_zip):
    import torch

    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.cost import measure_cost
    from nasforge.platform.engine.sweep import run_sweep
    from nasforge.search_spaces import create_space

    monkeypatch.setenv("NASFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "pictures"
    _cifar_folder(cifar10_zip, folder, ["airplane", "bird", "cat", "deer", "ship"])
    for name, n_classes in (("five", 5), ("six", 6)):
        if n_classes == 6:
            _cifar_folder(cifar10_zip, folder, ["truck"])
        _imagefolder_sweep(tmp_path, folder, name)
        study = run_sweep(load_sweep(f"{name}.yaml"), root="runs", show_progress=False)
        (t,) = study.trials
        assert t.state.name == "COMPLETE", t.user_attrs.get("fail_reason")
        state = torch.load(t.user_attrs["checkpoint"], map_location="cpu", weights_only=False)["state_dict"]
        heads = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
        assert heads[-1].shape[0] == n_classes  # the head has one output per class folder
        net = create_space("convnet", stages=2, widths=[4, 8], max_depth=1).build(t.user_attrs["sample"], (3, 64, 64),
                                                                                 n_classes)
        assert t.user_attrs["metrics"]["cost/flops"] == pytest.approx(measure_cost(net, (3, 64, 64))["cost/flops"])
    assert len(list((tmp_path / "cache").glob("imagefolder-*.npz"))) == 2  # the changed folder got its own


@pytest.mark.slow
def test_maskfolder_sweep_on_real_isbi_images(tmp_path, monkeypatch, isbi_zip):
    import io

    import numpy as np
    from PIL import Image

    from nasforge.platform.engine.config import parse_sweep
    from nasforge.platform.engine.sweep import run_sweep

    monkeypatch.setenv("NASFORGE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "membranes"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    with zipfile.ZipFile(isbi_zip) as zf:
        images = sorted(n for n in zf.namelist() if "/image/" in n and n.endswith(".png"))[:8]
        for n in images:
            stem = os.path.basename(n)
            with Image.open(io.BytesIO(zf.read(n))) as im:
                im.convert("L").resize((64, 64)).save(folder / "images" / stem)
            with Image.open(io.BytesIO(zf.read(n.replace("/image/", "/label/")))) as im:
                y = (np.asarray(im.convert("L").resize((64, 64), Image.NEAREST)) >= 128).astype(np.uint8)
                Image.fromarray(y).save(folder / "masks" / stem)
    cfg = parse_sweep({
        "name": "masks", "task": {"name": "segmentation", "data": {
            "name": "maskfolder", "path": str(folder), "val_fraction": 0.25,
            "options": {"classes": ["membrane", "cell"], "batch_size": 2}}},
        "space": [{"name": "encdec", "options": {"encoders": ["unet"], "unet_widths": [4], "widths": [4],
                                                 "gates": ["none"], "attns": ["none"], "stages": 2}}],
        "objectives": [{"metric": "val/miou"}], "budget": {"trials": 1}, "pruner": {"name": "none"},
        "trainer": {"accelerator": "cpu", "max_epochs": 1, "cpu_threads": 1}, "tracking": {"mode": "disabled"},
    })
    study = run_sweep(cfg, root=str(tmp_path / "runs"), show_progress=False)
    (t,) = study.trials
    assert t.state.name == "COMPLETE", t.user_attrs.get("fail_reason")
    assert 0.0 <= t.value <= 1.0


def test_imagefolder_refuses_mixed_sizes_naming_the_file_unless_it_resizes(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from nasforge.tasks.folder_data import ImageFolderDataModule

    monkeypatch.setenv("NASFORGE_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for c, size in (("a", 16), ("b", 16), ("c", 20)):
        (tmp_path / "d" / "train" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(tmp_path / "d" / "train" / c / f"{i}.png")
    with pytest.raises(ValueError, match=r"c/0.png: image size 20x20 differs from .*give image_size"):
        ImageFolderDataModule(str(tmp_path / "d")).prepare_data()
    dm = ImageFolderDataModule(str(tmp_path / "d"), image_size=12)
    dm.setup("fit")
    assert dm.input_shape == (1, 12, 12) and dm.num_classes == 3  # grey, resized, three class folders


def test_installed_plugins_add_task_aliases_and_spaces_through_entry_points(tmp_path, monkeypatch):
    """A distribution on the path (a real .dist-info, as pip writes it) declares a data module alias
    in ``nasforge.tasks`` and a space in ``nasforge.spaces``; the sweep file names both."""
    from nasforge.platform.engine.config import load_sweep

    site = tmp_path / "site"
    shutil.copytree(EXAMPLE / "digitlab", site / "digitlab", ignore=shutil.ignore_patterns("__pycache__"))
    info = site / "digitlab-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: digitlab\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[nasforge.tasks]\ndigitlab_digits = digitlab.data:DigitsData\n\n"
                                           "[nasforge.spaces]\ndigitlab_tinyconv = digitlab.space:TinyConvSpace\n")
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    proj = project(tmp_path, **{"task.data": {"class_path": "digitlab_digits"},
                                "space": [{"name": "digitlab_tinyconv"}]})
    (proj / "digitlab").rename(tmp_path / "not_on_path")  # only the installed copy can be found
    cfg = load_sweep(proj / "sweep.yaml")
    assert cfg.space[0].name == "digitlab_tinyconv"
    from nasforge.platform.engine.resolve import resolve_task

    assert resolve_task(cfg).data.load().__module__ == "digitlab.data"


def test_sweep_check_preflights_a_users_classes_and_every_searched_choice(tmp_path, capsys, monkeypatch):
    """The preflight goes through the same resolution and assembly as a trial, so a
    user's module, data module and space are checked by one real step, and a categorical init arg
    fails here whichever choice the one sample drew."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    proj = project(tmp_path)
    monkeypatch.chdir(proj)
    code = main(["sweep", "check", "sweep.yaml"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert not (proj / "runs").exists()
    bad = project(tmp_path, **{"space": params(**{"model.init_args.optimizer": {"choice": ["adam", "rmsprop"]}})})
    code = main(["sweep", "check", str(bad / "sweep.yaml")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "preflight: task.model: DigitClassifier: optimizer must be adam or sgd, got 'rmsprop'" in err, err
    assert not (proj / "runs").exists()


def test_reading_a_sweep_back_needs_neither_lightning_nor_the_users_code(tmp_path, monkeypatch):
    """`sweep status` / `sweep best` read the stored, resolved sweep.yaml and the study: another
    machine reading a shared study has no copy of the user's package, and must not pay Lightning's
    import (about 5 s) to print a table. Promote rebuilds the network, so it does need the code:
    without it, one line naming the class."""
    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.sweep import run_sweep

    proj = project(tmp_path, **{"budget.trials": 1, "trainer.max_epochs": 1,
                                "space": params(**{"model.init_args.lr": {"float": [0.01, 0.02]}})})
    monkeypatch.chdir(proj)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (trial,) = run_sweep(load_sweep("sweep.yaml"), root="runs", show_progress=False).trials
    assert trial.state.name == "COMPLETE", trial.user_attrs.get("fail_reason")
    shutil.move(str(proj / "digitlab"), str(tmp_path / "gone"))  # the user's package is not importable now
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    runs = str(proj / "runs")
    code = ("import sys, json; from nasforge.platform.cli import main; "
            f"codes = [main(['sweep', 'status', 'digitlab', '--root', {runs!r}]), "
            f"main(['sweep', 'best', 'digitlab', '--root', {runs!r}, '--json'])]; "
            "print(json.dumps({'codes': codes, 'imported': sorted({m.split('.')[0] for m in sys.modules} "
            "& {'lightning', 'torch', 'jsonargparse', 'digitlab'})}))")
    r = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True, env=env())
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"codes": [0, 0], "imported": []}
    assert "complete 1" in r.stdout and f'"trial": {trial.number}' in r.stdout
    r = subprocess.run([str(NASFORGE), "promote", "digitlab", "--best", "--root", runs], cwd=elsewhere,
                       capture_output=True, text=True, env=env(NASFORGE_REGISTRY=str(tmp_path / "registry")))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "space[0].class_path: cannot import 'digitlab.space.TinyConvSpace'" in r.stderr, r.stderr

"""Weight-sharing NAS: the nb201 supernet, single-path training through a callback (DDP too),
search with inherited weights by any strategy, and a one-shot sweep that ends in a promotable
model. Everything runs for real (Lightning fits, Optuna storage, spawned gloo ranks) on
scikit-learn's digits, which ship with the dependencies.
"""

from __future__ import annotations

import json
import random

import pytest
import torch
import yaml

SHAPE = (3, 16, 16)


def _nb201(**options):
    from nasforge.search_spaces import create_space

    return create_space("nb201", **{"C": 4, "N": 2, **options})


def _oneshot_cfg(name: str, **over):
    from nasforge.platform.engine.config import parse_sweep

    data = {
        "name": name,
        "seed": 0,
        "mode": "one_shot",
        "task": {
            "name": "classification",
            "data": {"name": "digits", "subset": 256, "val_subset": 128},
            "options": {"batch_size": 32},
        },
        "space": [{"name": "nb201", "options": {"C": 4, "N": 1}}],
        "strategy": {"name": "evolution"},
        "pruner": {"name": "none"},
        "oneshot": {"epochs": 2, "search_trials": 12, "top_k": 2, "calib_batches": 2, "rank": "supernet"},
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": 1,
            "limit_train_batches": 4,
            "cpu_threads": 1,
        },
        "tracking": {"mode": "disabled"},
    }
    for dotted, value in over.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return parse_sweep(data)


# ----------------------------------------------------------------------------- the supernet
def test_supernet_choices_come_from_the_space_declaration():
    from nasforge.search_spaces.supernet import layer_choices

    space = _nb201()
    net = space.build_supernet(SHAPE, 10)
    declared = {d.label: [str(c) for c in d.choices] for d in space.dims}
    choices = list(layer_choices(net))
    assert len(choices) == 6 * 3 * 2  # 6 edges x 3 stages x N=2 cells
    for _, choice in choices:
        assert list(choice.candidates) == declared[choice.label]


@pytest.mark.parametrize("seed", range(4))
def test_one_active_path_equals_the_standalone_network_with_the_same_weights(seed):
    from arch_helpers import assert_path_equals_standalone

    torch.manual_seed(seed)
    assert_path_equals_standalone(_nb201(), SHAPE, seed, batch=8)


def test_activating_an_unknown_choice_is_a_validation_error():
    from nasforge.search_spaces import SampleValidationError
    from nasforge.search_spaces.supernet import activate

    space = _nb201()
    net = space.build_supernet(SHAPE, 10)
    sample = {d.label: "nor_conv_3x3" for d in space.dims}
    sample["edge/2<-1"] = "sep_conv_9x9"
    with pytest.raises(SampleValidationError, match="edge/2<-1"):
        activate(net, sample)


def test_spaces_without_a_supernet_say_so():
    from nasforge.search_spaces import create_space

    space = create_space("convnet")
    assert not space.has_supernet
    with pytest.raises(NotImplementedError, match="convnet"):
        space.build_supernet((3, 8, 8), 10)


# ----------------------------------------------------------------------------- scoring + search
def _digits_scorer(space):
    from nasforge.platform.engine.single_path import InheritedWeightScorer
    from nasforge.tasks.digits import DigitsDataModule

    torch.manual_seed(0)
    dm = DigitsDataModule(subset=128, val_subset=64, batch_size=32)
    dm.setup("fit")
    net = space.build_supernet(dm.input_shape, dm.num_classes)
    return InheritedWeightScorer.from_datamodule(net, dm, calib_batches=2, val_batches=2)


def test_batchnorm_recalibration_gives_the_plain_average_over_the_batches():
    from nasforge.platform.engine.single_path import recalibrate_batchnorm

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    net[1].running_mean.fill_(5.0)  # statistics left over from other paths
    batches = [torch.randn(8, 3, 6, 6) * (i + 1) + i for i in range(3)]
    recalibrate_batchnorm(net, batches)
    with torch.no_grad():
        means = torch.stack([net[0](x).mean(dim=(0, 2, 3)) for x in batches])
    torch.testing.assert_close(net[1].running_mean, means.mean(0))
    assert not net.training and net[1].momentum == 0.1  # eval mode, momentum restored


def test_inherited_weight_score_does_not_depend_on_what_was_scored_before():

    space = _nb201(N=1)
    scorer = _digits_scorer(space)
    a, b = (space.sample(random.Random(s)) for s in (1, 2))
    first = scorer.score(a)
    scorer.score(b)  # recalibrates batch norm for b's path
    assert scorer.score(a) == first  # ... and a's statistics are recomputed, not left over


@pytest.mark.parametrize("strategy", ["tpe", "random", "evolution", "controller", "local_search", "gp", "qmc"])
def test_every_strategy_searches_the_supernet_as_an_ordinary_study(strategy):
    import optuna
    from nasforge.platform.engine.oneshot import search_supernet, top_samples
    from nasforge.platform.strategies import create_sampler

    space = _nb201(N=1)
    scorer = _digits_scorer(space)
    study = optuna.create_study(
        direction="maximize", sampler=create_sampler(strategy, space, seed=0)
    )
    search_supernet(study, space, scorer, n_trials=6)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 6
    for t in done:
        assert t.value == t.user_attrs["metrics"]["val/acc"] and 0.0 <= t.value <= 1.0
        assert space.validate(t.user_attrs["sample"]) == t.user_attrs["sample"]
    ((best, value),) = top_samples(study, 1)
    assert value == study.best_value and best == study.best_trial.user_attrs["sample"]


def test_fair_sampling_trains_every_choice_of_every_edge_once_per_round(tmp_path):
    from nasforge.platform.engine.oneshot import train_supernet
    from nasforge.platform.engine.trial import TrialContext
    from nasforge.search_spaces import create_space

    cfg = _oneshot_cfg("fair", **{"oneshot.sampling": "fair", "trainer.limit_train_batches": 5})
    ctx = TrialContext.create(cfg, str(tmp_path / "fair"))
    train_supernet(ctx, record_paths=True)  # 2 epochs x 5 batches = 2 rounds of the 5 ops
    paths = json.loads((tmp_path / "fair" / "supernet" / "paths_rank0.json").read_text())["paths"]
    assert [s for s, _ in paths] == list(range(10))
    nb201 = create_space("nb201")
    cells = [nb201.from_string(key) for _, key in paths]
    for first in (0, 5):
        for label in nb201.labels():  # each op on each edge exactly once per round
            assert sorted(c[label] for c in cells[first : first + 5]) == sorted(nb201.dims[0].choices)
    assert cells[:5] != cells[5:]  # a new order each round


# ----------------------------------------------------------------------------- DDP
@pytest.mark.slow
@pytest.mark.parametrize(
    "sampling,space",
    [
        ("uniform", {"name": "nb201", "options": {"C": 4, "N": 1}}),
        ("controller", {"name": "nb201", "options": {"C": 4, "N": 1}}),
        ("fair", {"name": "nasnet", "options": {"C": 4, "N": 1, "blocks": 3}}),
    ],
)
def test_ddp_supernet_training_activates_the_same_path_on_both_ranks_at_every_step(
    tmp_path, sampling, space
):
    from nasforge.platform.engine.oneshot import train_supernet
    from nasforge.platform.engine.trial import TrialContext

    cfg = _oneshot_cfg(
        "ddp_paths",
        **{
            "trainer.devices": 2,
            "trainer.limit_train_batches": 3,
            "oneshot.sampling": sampling,
            "oneshot.controller_every": 1,
            "space": [space],
        },
    )
    ctx = TrialContext.create(cfg, str(tmp_path / "ddp_paths"))
    train_supernet(ctx, record_paths=True)
    folder = tmp_path / "ddp_paths" / "supernet"
    r0, r1 = (json.loads((folder / f"paths_rank{r}.json").read_text()) for r in (0, 1))
    assert (
        r0["pid"] != r1["pid"] and r0["world_size"] == r1["world_size"] == 2
    )  # two real processes
    steps = [s for s, _ in r0["paths"]]
    assert steps == list(range(cfg.oneshot.epochs * 3))  # one path per step, every step
    assert r0["paths"] == r1["paths"]
    assert len({p for _, p in r0["paths"]}) > 1  # the path changes from step to step
    assert (folder / "supernet.pt").exists()


# ----------------------------------------------------------------------------- the sweep
def test_a_tiny_one_shot_sweep_runs_end_to_end_and_its_best_is_promoted(run_root, tmp_path, capsys):
    from nasforge.platform.engine.oneshot import search_study_name, top_samples
    from nasforge.platform.registry import load, promote
    from nasforge.platform.engine.run_folder import open_run

    cfg = _oneshot_cfg("tiny_oneshot")
    from nasforge.platform.engine.oneshot import run_oneshot

    out = run_oneshot(cfg, str(run_root), show_progress=False)
    supernet_dir = run_root / "tiny_oneshot" / "supernet"
    assert (supernet_dir / "supernet.pt").exists()
    assert json.loads((supernet_dir / "supernet.json").read_text())["global_step"] == 2 * 4

    search = out["search"]  # in the sweep's own storage, beside the retrain study
    assert search.study_name == search_study_name("tiny_oneshot")
    assert len([t for t in search.trials if t.state.name == "COMPLETE"]) == 12
    top = top_samples(search, 2)

    run = open_run("tiny_oneshot", str(run_root))  # the retrain is an ordinary sweep
    trials = sorted(run.study.trials, key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert [t.user_attrs["sample"] for t in trials] == [s for s, _ in top]
    assert [t.user_attrs["oneshot_rank"] for t in trials] == [1, 2]
    assert all(t.user_attrs["checkpoint"].endswith("best.ckpt") for t in trials)

    promotion = promote(
        "tiny_oneshot", best=True, root=str(run_root), registry=tmp_path / "registry"
    )
    assert promotion.meta["trial"]["number"] == run.study.best_trial.number
    model = load(promotion.version.ref, registry=tmp_path / "registry")
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)

    from nasforge.platform.cli import main  # status: the search beside the retrained trials

    capsys.readouterr()
    assert main(["sweep", "status", "tiny_oneshot", "--root", str(run_root)]) == 0
    out = capsys.readouterr().out
    assert "leaderboard: tiny_oneshot" in out and "tiny_oneshot.search (inherited weights)" in out

    from nasforge.platform.views.report import write_report  # the report: the search beside the retrained

    page = open(write_report("tiny_oneshot", root=str(run_root)), encoding="utf-8").read()
    manifest = json.loads(page.split('id="nasforge-report">')[1].split("</script>")[0])
    assert "search_history" in manifest["figures"]
    assert "12 samples of study tiny_oneshot.search" in page
    section = page.split("Search on the supernet (inherited weights)</h2>")[1].split("<h2>")[0]
    assert section.count("<tr>") == 1 + 12  # the header and every scored sample (12 <= SEARCH_ROWS)

    # run again: every phase resumes from what is there (no retraining, no new trials)
    again = run_oneshot(cfg, str(run_root), show_progress=False)
    assert len(again["search"].trials) == len(search.trials)
    assert len(again["retrain"].trials) == 2
    from nasforge.platform.errors import ConfigError

    with pytest.raises(ConfigError, match="oneshot.epochs"):  # a different supernet: a new sweep
        run_oneshot(_oneshot_cfg("tiny_oneshot", **{"oneshot.epochs": 3}), str(run_root))


def test_one_shot_sweep_file_errors_are_one_line_and_write_nothing(tmp_path):
    import subprocess
    import sys

    data = yaml.safe_load(yaml.safe_dump(_oneshot_cfg("bad").to_dict()))
    data["space"] = [{"name": "convnet", "options": {}}]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "nasforge.platform.cli",
            "sweep",
            "run",
            str(path),
            "--root",
            str(tmp_path / "runs"),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    assert (
        res.stderr.strip().count("\n") == 0 and "supernet" in res.stderr and "nb201" in res.stderr
    )
    assert not (tmp_path / "runs").exists()


def test_one_shot_sweep_is_preflighted_before_the_supernet_trains(tmp_path):
    """A mistake that only training finds (here a negative learning rate) is one line and exit 2
    before the supernet's first epoch, and nothing is written (before: the run folder was made
    and the supernet's fit failed)."""
    import subprocess
    import sys

    data = yaml.safe_load(yaml.safe_dump(_oneshot_cfg("bad_lr").to_dict()))
    data["task"]["options"]["lr"] = -1.0
    path = tmp_path / "bad_lr.yaml"
    path.write_text(yaml.safe_dump(data))
    res = subprocess.run([sys.executable, "-m", "nasforge.platform.cli", "sweep", "run", str(path),
                          "--root", str(tmp_path / "runs")], check=False, capture_output=True, text=True)
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip().count("\n") == 0 and "learning rate" in res.stderr, res.stderr
    assert not (tmp_path / "runs").exists()


def test_preflight_of_a_one_shot_sweep_trains_its_supernet_one_step_and_writes_nothing(tmp_path):
    from nasforge.platform.engine.preflight import preflight

    report = preflight(_oneshot_cfg("pf_oneshot"), tmp_path / "runs")
    assert {"train+val step", "supernet", "supernet step"} <= set(report.steps)  # retraining and supernet
    assert "val/acc" in report.metrics
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("oneshot.top_k", 0, "oneshot.top_k"),
        ("oneshot.sampling", "darts", "oneshot.sampling"),
        ("objectives", [{"metric": "val/loss", "direction": "minimize"}], "val/acc"),
    ],
)
def test_one_shot_config_is_checked(key, value, match):
    from nasforge.platform.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        _oneshot_cfg("bad", **{key: value})


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cifar10_oneshot_nb201", "cifar10_oneshot_reallocation"])
def test_the_shipped_cifar10_one_shot_files_run_through_the_command(name, cifar10_zip, run_root, capsys):
    from nasforge.platform.cli import main
    from nasforge.platform.engine.run_folder import open_run
    from tiny_sweeps import REPO

    sets = {
        "task.data.path": str(cifar10_zip),
        "task.data.subset": 256,
        "task.data.val_subset": 128,
        "oneshot.epochs": 1,
        "oneshot.search_trials": 4,
        "oneshot.top_k": 1,
        "oneshot.val_batches": 1,
        "oneshot.reference": 4,
        "trainer.max_epochs": 1,
        "trainer.cpu_threads": 1,
        "tracking.mode": "disabled",
    }
    args = [
        "sweep",
        "run",
        str(REPO / "sweeps" / f"{name}.yaml"),
        "--root",
        str(run_root),
    ]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    search = "search (inherited weights)" if name.endswith("reallocation") else "search (ranked by proxies)"
    assert "supernet epochs" in out and search in out and "retrained" in out
    run = open_run(name, str(run_root))
    assert [t.state.name for t in run.study.trials] == ["COMPLETE"]


def test_enas_controller_draws_the_trained_paths_and_is_rewarded_by_validation_batches(tmp_path):
    import optuna
    from nasforge.platform.engine.oneshot import controller_study_name, train_supernet
    from nasforge.platform.engine.trial import TrialContext

    cfg = _oneshot_cfg("enas", **{"oneshot.sampling": "controller", "oneshot.controller_every": 2})
    ctx = TrialContext.create(cfg, str(tmp_path / "enas"))
    train_supernet(ctx, record_paths=True)
    paths = json.loads((tmp_path / "enas" / "supernet" / "paths_rank0.json").read_text())["paths"]
    assert len(paths) == 2 * 4  # 2 epochs x 4 batches
    from nasforge.platform.engine.storage import create_storage

    study = optuna.load_study(
        study_name=controller_study_name("enas"),
        storage=create_storage(f"journal://{tmp_path / 'enas' / 'study.journal'}"),
    )
    episodes = sorted(study.trials, key=lambda t: t.number)
    assert [t.state.name for t in episodes] == ["COMPLETE"] * 4  # one episode per 2 steps
    assert all(
        0.0 <= t.value <= 1.0 for t in episodes
    )  # the reward: accuracy on a validation batch
    space = ctx.space
    for t in episodes:  # each episode's path is what the supernet trained for its steps
        step = t.user_attrs["step"]
        assert [p for s, p in paths if step <= s < step + 2] == [
            space.key(t.user_attrs["sample"])
        ] * 2

"""Search strategies as Optuna samplers: names, option validation, the RL controller learning,
regularized evolution, and the promise that a strategy's state lives in storage (two workers
share one history; a resumed sweep continues exactly where it stopped). All objectives are
table look-ups or arithmetic: no training."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import optuna
import pytest
from pathlib import Path

from nasforge.platform.errors import ConfigError
from nasforge.platform.strategies import STRATEGIES, create_sampler
from nasforge.search_spaces import Categorical, SampleValidationError, Space, create_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


class ToySpace(Space):
    """3 decisions x 4 choices = 64 samples; the best one is known. ``x0 == x1 == 'a'`` is invalid."""

    name = "toy"

    def dimensions(self):
        return [Categorical(f"toy/x{i}", choices=("a", "b", "c", "d")) for i in range(3)]

    def check(self, sample):
        if sample["toy/x0"] == "a" and sample["toy/x1"] == "a":
            raise SampleValidationError("x0 and x1 cannot both be 'a'", "toy/x1")


TOY_BEST = {"toy/x0": "c", "toy/x1": "b", "toy/x2": "d"}


def toy_score(sample) -> float:
    return float(sum(sample[k] == v for k, v in TOY_BEST.items()))


def run_toy(strategy: str, trials: int, seed: int = 0, **options):
    space = ToySpace()
    sampler = create_sampler({"name": strategy, "options": options}, space, seed, ["maximize"])
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: toy_score(space.suggest(t)), n_trials=trials)
    return study, sampler


# ----------------------------------------------------------------------------- names, options
def test_every_strategy_name_gives_an_optuna_sampler():
    nb201 = create_space("nb201")
    numeric = create_space("hparams", lr=[1e-4, 1e-1], weight_decay=[1e-6, 1e-2])
    expected = {"tpe": "TPESampler", "random": "RandomSampler", "nsga2": "NSGAIISampler", "gp": "GPSampler",
                "qmc": "QMCSampler", "grid": "GridSampler", "controller": "ControllerSampler",
                "evolution": "EvolutionSampler", "local_search": "LocalSearchSampler"}
    for name, cls in expected.items():
        sampler = create_sampler({"name": name}, nb201, 0, ["maximize"])
        assert isinstance(sampler, optuna.samplers.BaseSampler) and type(sampler).__name__ == cls
    assert type(create_sampler({"name": "cmaes"}, numeric, 0, ["maximize"])).__name__ == "CmaEsSampler"
    assert set(STRATEGIES) >= set(expected) | {"cmaes"}


def test_option_errors_name_the_option_and_the_valid_ones():
    space = create_space("nb201")
    with pytest.raises(ConfigError, match=r"unknown option 'lrr'.*valid options: .*\blr\b.*batch_size"):
        create_sampler({"name": "controller", "options": {"lrr": 0.1}}, space, 0, ["maximize"])
    with pytest.raises(ConfigError, match=r"unknown option 'n_startup'.*n_startup_trials"):
        create_sampler({"name": "tpe", "options": {"n_startup": 3}}, space, 0, ["maximize"])
    with pytest.raises(ConfigError, match=r"unknown option 'pop'.*population, sample_size"):
        create_sampler({"name": "evolution", "options": {"pop": 3}}, space, 0, ["maximize"])
    with pytest.raises(ConfigError, match=r"strategy.options.lr: expected float"):
        create_sampler({"name": "controller", "options": {"lr": "fast"}}, space, 0, ["maximize"])
    with pytest.raises(ConfigError, match="sample_size"):
        create_sampler({"name": "evolution", "options": {"population": 4, "sample_size": 8}}, space, 0, ["maximize"])
    with pytest.raises(ConfigError, match="unknown strategy 'bayes'.*tpe"):
        create_sampler({"name": "bayes"}, space, 0, ["maximize"])
    with pytest.raises(ConfigError, match="cmaes searches numeric spaces only"):
        create_sampler({"name": "cmaes"}, space, 0, ["maximize"])


def test_multi_objective_sweeps_declare_the_controller_reward():
    space = create_space("nb201")
    with pytest.raises(ConfigError, match="must declare its reward"):
        create_sampler({"name": "controller"}, space, 0, ["maximize", "minimize"])
    with pytest.raises(ConfigError, match="reward_target"):
        create_sampler({"name": "controller", "options": {"reward": "mnasnet"}}, space, 0, ["maximize", "minimize"])
    s = create_sampler({"name": "controller", "options": {"reward": "mnasnet", "reward_target": 1e6}},
                       space, 0, ["maximize", "minimize"])
    # MnasNet: accuracy * (cost / target) ** -0.07: cheaper is better at equal accuracy
    assert s.reward([90.0, 5e5]) > s.reward([90.0, 1e6]) > s.reward([90.0, 2e6])
    assert s.reward([90.0, 1e6]) == pytest.approx(90.0)
    toy = ToySpace()
    mo = create_sampler({"name": "controller", "options": {"reward": "mnasnet", "reward_target": 2.0}},
                        toy, 0, ["maximize", "minimize"])
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=mo)
    study.optimize(lambda t: (lambda s: (toy_score(s), 1.0 + sum(v == "d" for v in s.values())))(toy.suggest(t)),
                   n_trials=12)
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    w = create_sampler({"name": "evolution", "options": {"reward": "weighted", "reward_weights": [1.0, 1e-6]}},
                       space, 0, ["maximize", "minimize"])
    assert w.reward([90.0, 1e6]) == pytest.approx(89.0)  # 1 * 90 - 1e-6 * 1e6
    assert type(create_sampler({"name": "nsga2"}, space, 0, ["maximize", "minimize"])).__name__ == "NSGAIISampler"


# ----------------------------------------------------------------------------- the controller
def test_controller_learns_the_best_sample_faster_than_random():
    trials = 60
    study, sampler = run_toy("controller", trials, dedup=False, tanh_constant=2.5)
    p_best = sampler.probabilities(study, [TOY_BEST])[0]
    assert p_best > 0.5, f"policy puts only {p_best:.2f} on the best sample after {trials} trials (uniform: 1/64)"
    late = lambda st: sum(t.params == TOY_BEST for t in st.trials[-20:])  # noqa: E731
    random_study, _ = run_toy("random", trials)
    assert late(study) >= 8 > late(random_study)


def test_controller_never_proposes_invalid_samples_and_penalizes_them():
    study, sampler = run_toy("controller", 40, seed=1)
    space = ToySpace()
    for t in study.trials:
        space.validate(t.params)  # raises if invalid
        assert t.params == t.system_attrs["nasforge:sample"]
    rejected = [s for t in study.trials for s in t.system_attrs.get("nasforge:rejected", [])]
    assert rejected and all(s["toy/x0"] == s["toy/x1"] == "a" for s in rejected)
    p_invalid = sampler.probabilities(study, [{"toy/x0": "a", "toy/x1": "a", "toy/x2": "a"}])[0]
    assert p_invalid < 1 / 64


def test_controller_failed_and_pruned_trials_are_defined_outcomes():
    space = ToySpace()
    # no de-duplication here: 64 samples run out, and we want to see the policy's own choice
    sampler = create_sampler({"name": "controller", "options": {"dedup": False}}, space, 0, ["maximize"])
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial):
        s = space.suggest(trial)
        if s["toy/x2"] == "a":
            raise RuntimeError("this architecture crashes")  # FAIL: gets the invalid penalty
        if s["toy/x2"] == "b":
            trial.report(toy_score(s) - 0.5, step=0)
            raise optuna.TrialPruned()  # PRUNED: scores its last reported value
        return toy_score(s)

    study.optimize(objective, n_trials=50, catch=(RuntimeError,))
    states = {t.state.name for t in study.trials}
    assert {"COMPLETE", "FAIL", "PRUNED"} <= states
    late = study.trials[-15:]
    assert sum(t.params["toy/x2"] == "a" for t in late) <= 1  # uniform: 3.75 of 15; it learned to avoid the crashing choice


def test_controller_extends_its_cached_policy_batch_by_batch_with_many_trials(monkeypatch):
    """After hundreds of trials a suggestion only adds the new batches to the cached policy; it
    never replays the history (what keeps a suggestion at a few ms: the timing itself lives in
    benchmarks/sampler_overhead.py, not in a test that a loaded machine could fail)."""
    from nasforge.platform.strategies.controller import ControllerSampler

    space = create_space("nb201")
    sampler = create_sampler({"name": "controller"}, space, 0, ["maximize"])
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: len(space.key(space.suggest(t))) % 7, n_trials=200)
    updates = []
    original = ControllerSampler._update
    monkeypatch.setattr(ControllerSampler, "_update", lambda self, *a, **k: updates.append(1) or original(self, *a, **k))
    study.optimize(lambda t: len(space.key(space.suggest(t))) % 7, n_trials=10)
    batch = sampler.options.batch_size if hasattr(sampler, "options") else 5
    assert 1 <= len(updates) <= 10 // batch + 1  # 200 trials = 40 batches would be replayed otherwise


@pytest.mark.parametrize("strategy", ["controller", "evolution"])
def test_our_strategies_handle_conditional_and_float_dimensions(strategy):
    from nasforge.search_spaces import create_composite

    space = create_composite([{"name": "nb201"}, {"name": "hparams"}])  # hp/momentum only with sgd
    sampler = create_sampler({"name": strategy, "options": {"population": 4, "sample_size": 2}
                              if strategy == "evolution" else {}}, space, 0, ["maximize"])
    study = optuna.create_study(direction="maximize", sampler=sampler)
    grid = {d.label: d.choices for d in space.decisions()}
    study.optimize(lambda t: -abs(space.suggest(t).get("hp/lr", 0) - 0.01), n_trials=15)
    for t in study.trials:
        space.validate(t.params)
        assert ("hp/momentum" in t.params) == (t.params["hp/optimizer"] == "sgd")
        assert all(t.params[k] in grid[k] for k in t.params)  # floats come from the decision grid


# ----------------------------------------------------------------------------- evolution
def test_evolution_is_a_deterministic_function_of_seed_and_trials():
    a, _ = run_toy("evolution", 30, seed=5, population=6, sample_size=3)
    b, _ = run_toy("evolution", 30, seed=5, population=6, sample_size=3)
    c, _ = run_toy("evolution", 30, seed=6, population=6, sample_size=3)
    params = lambda st: [t.params for t in st.trials]  # noqa: E731
    assert params(a) == params(b) != params(c)
    # after the random population, every child differs from some member in exactly one decision
    keys = [ToySpace().key(p) for p in params(a)]
    assert len(set(keys)) == len(keys)  # de-duplicated
    assert max(t.value for t in a.trials) == 3.0  # found the best sample of 64 in 30 trials


def test_evolution_resumes_where_it_stopped():
    space = ToySpace()
    whole, _ = run_toy("evolution", 24, seed=2, population=6, sample_size=3)
    study = optuna.create_study(direction="maximize",
                                sampler=create_sampler({"name": "evolution", "options": {"population": 6,
                                                        "sample_size": 3}}, space, 2, ["maximize"]))
    study.optimize(lambda t: toy_score(space.suggest(t)), n_trials=13)
    study.sampler = create_sampler({"name": "evolution", "options": {"population": 6, "sample_size": 3}},
                                   space, 2, ["maximize"])  # a fresh sampler: nothing cached
    study.optimize(lambda t: toy_score(space.suggest(t)), n_trials=11)
    assert [t.params for t in study.trials] == [t.params for t in whole.trials]


# ----------------------------------------------------------------------------- shared storage
WORKER = textwrap.dedent("""
    import sys, optuna
    from nasforge.platform.strategies import create_sampler
    from nasforge.search_spaces import create_space
    from nasforge.tasks.tabular import TabularBenchmark
    journal, n, seed, table = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    space, bench = create_space("nb201"), TabularBenchmark(table)
    sampler = create_sampler({"name": "controller"}, space, seed, ["maximize"])
    study = optuna.create_study(study_name="s", storage=storage, sampler=sampler, direction="maximize",
                                load_if_exists=True)
    study.optimize(lambda t: bench.evaluate(space.key(space.suggest(t)))["val_acc_12ep"], n_trials=n)
""")


def _journal_study(path, seed):
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    sampler = create_sampler({"name": "controller"}, create_space("nb201"), seed, ["maximize"])
    return optuna.create_study(study_name="s", storage=storage, sampler=sampler, direction="maximize",
                               load_if_exists=True)


def _run_here(study, table, n):
    from nasforge.tasks.tabular import TabularBenchmark

    space, bench = create_space("nb201"), TabularBenchmark(str(table))
    study.optimize(lambda t: bench.evaluate(space.key(space.suggest(t)))["val_acc_12ep"], n_trials=n)


@pytest.mark.slow
def test_two_controller_workers_share_one_consistent_history(tmp_path, nb201_csv):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    journal = tmp_path / "study.log"
    _journal_study(journal, 0)  # create the study once
    procs = [subprocess.Popen([sys.executable, str(script), str(journal), "15", "0", str(nb201_csv)])
             for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    trials = _journal_study(journal, 0).get_trials()
    assert sorted(t.number for t in trials) == list(range(30))  # no duplicated numbers
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert all(t.params == t.system_attrs["nasforge:sample"] for t in trials)
    space = create_space("nb201")
    keys = [space.canonical_key(t.params) for t in trials]
    assert len(set(keys)) >= 28  # de-duplication holds across workers (two may race on one key)


@pytest.mark.slow
def test_resumed_controller_sweep_continues_the_uninterrupted_one(tmp_path, nb201_csv):
    whole = _journal_study(tmp_path / "whole.log", 3)
    _run_here(whole, nb201_csv, 22)
    # the same sweep interrupted after 12 trials, resumed by a fresh process
    part = _journal_study(tmp_path / "part.log", 3)
    _run_here(part, nb201_csv, 12)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    subprocess.run([sys.executable, str(script), str(tmp_path / "part.log"), "10", "3", str(nb201_csv)],
                   check=True, timeout=300)
    resumed = _journal_study(tmp_path / "part.log", 3).get_trials()
    assert [t.params for t in resumed] == [t.params for t in whole.get_trials()]


# ----------------------------------------------------------------------------- the sweep file
SWEEP = "sweeps/nb201_cifar10.yaml"


@pytest.mark.slow
def test_nb201_sweep_file_runs_with_each_strategy(run_root, nb201_csv):
    from pathlib import Path

    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.sweep import run_sweep

    from nasforge.tasks.tabular import TabularBenchmark

    bench, space = TabularBenchmark(str(nb201_csv)), create_space("nb201")
    path = Path(__file__).resolve().parents[1] / SWEEP
    for name in ("controller", "evolution", "tpe", "random", "gp", "qmc", "nsga2", "grid"):
        cfg = load_sweep(path, {"strategy.name": name, "budget.trials": 4, "name": f"nb201_{name}"})
        study = run_sweep(cfg, root=str(run_root), show_progress=False)
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        assert len(done) == 4, name
        for t in done:  # each trial scored by its cell's row in the table
            assert t.values[0] == bench.evaluate(space.key(t.params))["val_acc_12ep"]
    with pytest.raises(ConfigError, match="numeric spaces only"):
        cfg = load_sweep(path, {"strategy.name": "cmaes", "budget.trials": 2, "name": "nb201_cmaes"})
        run_sweep(cfg, root=str(run_root), show_progress=False)


@pytest.mark.slow
def test_resumed_run_sweep_continues_the_same_controller_policy(run_root, nb201_csv):
    from pathlib import Path

    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.sweep import run_sweep

    path = Path(__file__).resolve().parents[1] / SWEEP
    whole = run_sweep(load_sweep(path, {"budget.trials": 16, "name": "whole"}), root=str(run_root),
                      show_progress=False)
    run_sweep(load_sweep(path, {"budget.trials": 8, "name": "part"}), root=str(run_root), show_progress=False)
    part = run_sweep(load_sweep(path, {"budget.trials": 16, "name": "part"}), root=str(run_root),
                     show_progress=False)
    assert [t.params for t in part.trials] == [t.params for t in whole.trials]


@pytest.mark.parametrize("strategy", ["random", "tpe", "controller", "evolution"])
def test_nb201_sweep_file_runs_with_each_strategy_from_the_cli(strategy, nb201_csv, tmp_path, capsys):
    """`nasforge sweep run sweeps/nb201_cifar10.yaml --set strategy.name=...` end to end."""
    from nasforge.platform.cli import main
    from nasforge.platform.engine.storage import load_study

    root = tmp_path / "runs"
    sweep_file = Path(__file__).resolve().parents[1] / "sweeps" / "nb201_cifar10.yaml"
    args = ["sweep", "run", str(sweep_file), "--set", f"strategy.name={strategy}", "--set",
            f"task.data.path={nb201_csv}", "--name", f"nb201-{strategy}", "--trials", "12", "--root", str(root),
            "--no-progress"]
    assert main(args) == 0
    assert f"leaderboard: nb201-{strategy}" in capsys.readouterr().out
    study = load_study(f"nb201-{strategy}", root)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 12
    assert all(0.0 < t.value < 100.0 for t in complete)

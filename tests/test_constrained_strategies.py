"""Constraints in every strategy of ours: with a ``cost/params`` cap (reported the way the trial
runner does, ``Trial.set_constraint``), `controller`, `evolution` and `local_search` return a
feasible best trial and propose fewer infeasible samples than random search; an infeasible trial
is never an incumbent and never positively rewarded; multi-objective sweeps keep working.
NAS-Bench-201 trials are table look-ups; the parameter count is the real one of each cell's
network (built, counted, cached)."""
from __future__ import annotations

import functools

import optuna
import pytest

from nasforge.platform.strategies import create_sampler
from nasforge.search_spaces import create_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

CAP = 130_000  # about half of the NB-201 cells (C = 16, N = 1) have more parameters
KEY = f"cost/params<={CAP:g}"  # the trial runner's constraint name


@functools.lru_cache(maxsize=None)
def _params(key: str) -> int:
    from nasforge.platform.engine.cost import count_params
    from nasforge.search_spaces.nb201 import from_string

    return count_params(create_space("nb201").build(from_string(key), (3, 32, 32), 10))


def constrained_sweep(strategy: str, seed: int, trials: int, bench) -> optuna.Study:
    space = create_space("nb201")
    study = optuna.create_study(direction="maximize",
                                sampler=create_sampler({"name": strategy}, space, seed, ["maximize"]))

    def objective(trial):
        key = space.key(space.suggest(trial))
        trial.set_constraint(KEY, _params(key) - CAP)  # feasible when <= 0 (Optuna's convention)
        return bench.evaluate(key)["val_acc_12ep"]

    study.optimize(objective, n_trials=trials)
    return study


@pytest.fixture(scope="module")
def bench(nb201_csv):
    from nasforge.tasks.tabular import TabularBenchmark

    return TabularBenchmark(str(nb201_csv))


def test_our_strategies_respect_a_params_cap_better_than_random(bench):
    seeds, trials = range(3), 60
    infeasible = {}
    for strategy in ("random", "controller", "evolution", "local_search"):
        count = 0
        for seed in seeds:
            study = constrained_sweep(strategy, seed, trials, bench)
            count += sum(t.constraints[KEY] > 0 for t in study.trials)
            best = study.best_trial  # Optuna's: the best feasible trial
            assert best.constraints[KEY] <= 0 and _params(create_space("nb201").key(best.params)) <= CAP
        infeasible[strategy] = count
    for strategy in ("controller", "evolution", "local_search"):
        assert infeasible[strategy] < infeasible["random"], infeasible


def test_an_infeasible_best_is_never_the_local_search_centre(bench):
    """The table's best cell breaks the cap: evaluated first, it must not become the centre whose
    neighbours the search then evaluates."""
    from nasforge.search_spaces.nb201 import from_string

    space = create_space("nb201")
    keys = list(bench.keys())
    top = max(keys, key=lambda k: bench.evaluate(k)["val_acc_12ep"])
    assert _params(top) > CAP
    sampler = create_sampler({"name": "local_search", "options": {"init": 1}}, space, 0, ["maximize"])
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial(from_string(top))

    def objective(trial):
        key = space.key(space.suggest(trial))
        trial.set_constraint(KEY, _params(key) - CAP)
        return bench.evaluate(key)["val_acc_12ep"]

    study.optimize(objective, n_trials=25)
    assert study.trials[0].constraints[KEY] > 0 and study.trials[0].value == max(t.value for t in study.trials)
    top_cell = from_string(top)
    around_top = [t for t in study.trials[1:] if sum(t.params[k] != v for k, v in top_cell.items()) == 1]
    assert len(around_top) <= 2  # as its centre, the search would have evaluated ~20 of its 24 neighbours
    assert study.best_trial.constraints[KEY] <= 0


def test_the_controller_never_rewards_an_infeasible_sample():
    from nasforge.platform.strategies.controller import _advantages

    # rewards after the transform, with the last two penalized (failed, invalid or infeasible)
    adv = _advantages([0.9, 0.1, 0.95, 0.99], [False, False, True, True], baseline=0.5)
    assert adv[:2] == pytest.approx([0.4, -0.4]) and adv[2] == adv[3] == 0.0


@pytest.mark.parametrize("strategy", ["controller", "evolution", "local_search"])
def test_multi_objective_constrained_sweeps_keep_working(strategy, bench):
    space = create_space("nb201")
    options = {"reward": "weighted", "reward_weights": [1.0, 1e-5]}
    sampler = create_sampler({"name": strategy, "options": options}, space, 0, ["maximize", "minimize"])
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)

    def objective(trial):
        key = space.key(space.suggest(trial))
        trial.set_constraint(KEY, _params(key) - CAP)
        return bench.evaluate(key)["val_acc_12ep"], float(_params(key))

    study.optimize(objective, n_trials=35)
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    front = study.best_trials  # Optuna's Pareto front of feasible trials
    assert front and all(t.constraints[KEY] <= 0 for t in front)

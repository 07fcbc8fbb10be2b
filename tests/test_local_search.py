"""Local search (White et al. 2021) as a strategy: it finds the best sample of a small space in
fewer evaluations than random search, its proposals are a function of the seed and the stored
trials (a resumed study continues it), and `sweeps/nb201_cifar10.yaml` runs with it from the
command line with two workers and resumes. Objectives are arithmetic or table look-ups."""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from nasforge.platform.errors import ConfigError
from nasforge.platform.strategies import create_sampler
from nasforge.search_spaces import Categorical, CompositeSpace, Space, create_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


class GridSpace(Space):
    """5 decisions x 4 choices = 1,024 samples; the best one is known."""

    name = "grid5"

    def dimensions(self):
        return [Categorical(f"g/x{i}", choices=("a", "b", "c", "d")) for i in range(5)]


BEST = {"g/x0": "c", "g/x1": "b", "g/x2": "d", "g/x3": "a", "g/x4": "c"}


def score(sample) -> float:
    """Matches with BEST, plus an interaction: x0 and x1 right together are worth a bonus."""
    hits = sum(sample[k] == v for k, v in BEST.items())
    return hits + 0.5 * (sample["g/x0"] == "c" and sample["g/x1"] == "b")


def evaluations_to_best(strategy: str, seed: int, budget: int) -> int:
    """The 1-based trial number at which BEST was evaluated (budget + 1 if never)."""
    space = GridSpace()
    study = optuna.create_study(direction="maximize",
                                sampler=create_sampler({"name": strategy}, space, seed, ["maximize"]))
    study.optimize(lambda t: score(space.suggest(t)), n_trials=budget)
    return next((t.number + 1 for t in study.trials if t.params == BEST), budget + 1)


def test_local_search_finds_the_best_sample_in_fewer_evaluations_than_random():
    budget, seeds = 80, range(6)
    ours = [evaluations_to_best("local_search", s, budget) for s in seeds]
    rand = [evaluations_to_best("random", s, budget) for s in seeds]
    assert all(n <= budget for n in ours), ours  # found in every run
    assert sum(ours) < sum(rand) / 2, (ours, rand)  # random finds 1 of 1,024 in ~8 % of 80-trial runs


def test_local_search_moves_one_decision_at_a_time_and_never_repeats():
    space = GridSpace()
    sampler = create_sampler({"name": "local_search", "options": {"init": 4, "restart_init": 4}}, space, 3, ["maximize"])
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: score(space.suggest(t)), n_trials=30)
    params = [t.params for t in study.trials]
    assert len({space.key(p) for p in params}) == 30  # de-duplicated
    climbs: dict[int, int] = {}
    for i, t in enumerate(study.trials):
        climb = t.system_attrs.get("nasforge:restart", 0)
        climbs[climb] = climbs.get(climb, 0) + 1
        if climbs[climb] > 4:  # past a climb's random start: one edit away from an earlier sample
            assert any(sum(params[i][k] != q[k] for k in q) == 1 for q in params[:i]), i
    assert score(max(params, key=score)) == score(BEST)


def test_local_search_is_a_function_of_seed_and_stored_trials():
    space = create_space("nb201")

    def run(seed, split):
        study = optuna.create_study(direction="maximize")
        for n in split:  # a fresh sampler for each part: nothing carried over in memory
            study.sampler = create_sampler({"name": "local_search"}, space, seed, ["maximize"])
            study.optimize(lambda t: len(space.canonical_key(space.suggest(t))) % 11, n_trials=n)
        return [t.params for t in study.trials]

    assert run(4, [40]) == run(4, [17, 23]) != run(5, [40])


def test_local_search_options_are_checked():
    space = create_space("nb201")
    with pytest.raises(ConfigError, match=r"restart must be one of next_best, random, kick"):
        create_sampler({"name": "local_search", "options": {"restart": "often"}}, space, 0, ["maximize"])
    with pytest.raises(ConfigError, match=r"unknown option 'inits'.*\binit\b"):
        create_sampler({"name": "local_search", "options": {"inits": 3}}, space, 0, ["maximize"])
    with pytest.raises(ConfigError, match="must declare its reward"):
        create_sampler({"name": "local_search"}, space, 0, ["maximize", "minimize"])
    with pytest.raises(ConfigError, match=r"order must be one of local, additive, random"):
        create_sampler({"name": "local_search", "options": {"order": "best"}}, space, 0, ["maximize"])
    with pytest.raises(ConfigError, match="locality must be > 0"):
        create_sampler({"name": "local_search", "options": {"locality": 0}}, space, 0, ["maximize"])
    with pytest.raises(ConfigError, match=r"scope must be one of climb, all"):
        create_sampler({"name": "local_search", "options": {"scope": "none"}}, space, 0, ["maximize"])


def test_a_later_climb_fits_its_model_to_its_own_trials_and_every_climbs_start():
    """``scope: climb`` (the default): once a climb has proved its local optimum, the next one
    orders neighbours by a model of its own trials and of the samples that started every climb,
    not of the earlier climbs' moves (which steer it back to the optimum already proved)."""
    space = GridSpace()
    sampler = create_sampler({"name": "local_search", "options": {"init": 4, "restart_init": 3}}, space, 1,
                             ["maximize"])
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: score(space.suggest(t)), n_trials=120)
    history = sampler.history(study, len(study.trials))
    climb = {r.number: int(r.extra.get("restart", 0)) for r in history}
    last = max(climb.values())
    assert last >= 2, "the budget should cover a few climbs"
    first_of = {}
    for r in history:
        first_of.setdefault(climb[r.number], []).append(r.number)
    starts = {n for k, ns in first_of.items() for n in ns[:4 if k == 0 else 3]}
    best = max(history, key=lambda r: r.score)
    used = {r.number for r in sampler.model_trials(history, last, best)}
    assert used == {r.number for r in history if climb[r.number] == last or r.number in starts}
    assert any(climb[n] < last and n not in starts for n in climb)  # earlier moves exist and are left out
    everything = create_sampler({"name": "local_search", "options": {"scope": "all"}}, space, 1, ["maximize"])
    assert {r.number for r in everything.model_trials(history, last, best)} == set(climb)


def test_nb201_path_encoding_counts_the_op_sequences_from_input_to_output():
    """`Space.features` of nb201: one count per op sequence along the routes 0->3, 0->1->3,
    0->2->3 and 0->1->2->3 that carry no ``none`` (White et al. 2020's path encoding)."""
    space = create_space("nb201")
    conv = {label: "nor_conv_3x3" for label in space.labels()}
    assert space.features(conv) == {"path:nor_conv_3x3": 1.0, "path:nor_conv_3x3>nor_conv_3x3": 2.0,
                                    "path:nor_conv_3x3>nor_conv_3x3>nor_conv_3x3": 1.0}
    cut = {**conv, "edge/3<-0": "none", "edge/2<-1": "none", "edge/1<-0": "skip_connect"}
    assert space.features(cut) == {"path:skip_connect>nor_conv_3x3": 1.0, "path:nor_conv_3x3>nor_conv_3x3": 1.0}
    assert space.features(cut) is not space.features(cut)  # a copy: a caller may change it
    assert Space.features(space, conv) == {}  # spaces without structure add nothing
    both = CompositeSpace([space, create_space("hparams", lr=[1e-4, 1e-1])])
    assert both.features({**cut, "lr": 0.01}) == {f"nb201:{k}": v for k, v in space.features(cut).items()}


class XYZSpace(Space):
    name = "xyz"

    def dimensions(self):
        return [Categorical(k, choices=("a", "b", "c")) for k in ("x", "y", "z")]


def test_the_samplers_local_model_follows_the_trials_near_the_centre():
    """Where the trials near the centre and the far ones disagree on a decision's best value, the
    sampler's locally weighted model (order: local) picks the neighbour the near ones favour, and
    the plain model (order: additive) the one the majority favours: the model `pick` really uses."""
    import random

    from optuna.trial import TrialState

    from nasforge.platform.strategies.base import Record

    centre = {"x": "a", "y": "a", "z": "a"}
    near = [({"x": "a", "y": "a", "z": "b"}, 1.0), ({"x": "a", "y": "a", "z": "c"}, 0.0)]  # here z: b wins
    far = [({"x": "b", "y": "b", "z": z}, v) for z, v in [("c", 1.0), ("b", 0.0)] * 4]  # far away: c wins
    trials = [Record(i, s, TrialState.COMPLETE, v, None, {}) for i, (s, v) in enumerate(near + far)]
    b, c = {**centre, "z": "b"}, {**centre, "z": "c"}
    picks = {}
    for order in ("local", "additive"):
        sampler = create_sampler({"name": "local_search", "options": {"order": order, "features": False}},
                                 XYZSpace(), 0, ["maximize"])
        picks[order] = {sampler.pick(centre, fresh, trials, random.Random(seed))["z"]
                        for fresh in ([b, c], [c, b]) for seed in range(3)}  # order and ties do not matter
    assert picks == {"local": {"b"}, "additive": {"c"}}


@pytest.mark.slow
def test_nb201_sweep_file_runs_with_local_search_on_two_workers_and_resumes(nb201_csv, tmp_path):
    """`nasforge sweep run sweeps/nb201_cifar10.yaml --workers 2` with local_search, as a user runs
    it (a subprocess), then the same command with a larger budget resumes the study. The first
    trials wait at the run folder's HOLD until both workers hold one (event-driven: a worker
    that starts late cannot find every trial already done)."""
    from sweep_workers import hold, journal_url, release_held, sweep_run, sweep_start

    from nasforge.platform.engine.storage import load_study
    from nasforge.tasks.tabular import TabularBenchmark

    root = tmp_path / "runs"
    root.mkdir()
    sweep_file = Path(__file__).resolve().parents[1] / "sweeps" / "nb201_cifar10.yaml"
    common = ["--set", "strategy.name=local_search", "--set", f"task.data.path={nb201_csv}", "--name", "nb201-ls",
              "--workers", "2"]
    held = hold(root, "nb201-ls")
    first = sweep_start(sweep_file, root, *common, "--trials", "24")
    out = release_held(first, held, "nb201-ls", journal_url(root, "nb201-ls"), count=2)  # one trial per worker
    assert first.returncode == 0, out[-3000:]
    study = load_study("nb201-ls", root)
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 24
    assert {t.user_attrs.get("worker") for t in study.trials} >= {"w0", "w1"}
    before = {t.number: t.params for t in study.trials}

    resumed = sweep_run(sweep_file, root, *common, "--trials", "40", timeout=400)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    study = load_study("nb201-ls", root)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 40 and {t.number: t.params for t in study.trials if t.number in before} == before
    space, bench = create_space("nb201"), TabularBenchmark(str(nb201_csv))
    keys = [space.canonical_key(t.params) for t in done]
    # de-duplicated across workers and the resume: a key drawn twice only by trials that ran at the
    # same time on the two workers (each asked before the other was told, so neither saw its score)
    first_of: dict = {}
    for t, key in sorted(zip(done, keys), key=lambda p: p[0].datetime_start):
        if key in first_of:
            earlier = first_of[key]
            assert t.datetime_start < earlier.datetime_complete, (t.number, earlier.number, key)
            assert t.user_attrs["worker"] != earlier.user_attrs["worker"], (t.number, earlier.number, key)
        else:
            first_of[key] = t
    assert len(set(keys)) >= 30
    for t in done:  # each trial scored by its cell's row in the table
        assert t.values[0] == bench.evaluate(space.key(t.params))["val_acc_12ep"]

"""The `morphism` strategy on an arithmetic objective (no training): the first trial is the seed
network, every later one a child of a ranked trial whose stored operations rebuild its sample,
infeasible trials are never parents, proposals are a function of the stored trials (a resumed
sweep proposes the same), and retention keeps a running child's parent."""
from __future__ import annotations

import optuna
import pytest

from nasforge.platform.engine.retention import needed_parents
from nasforge.platform.errors import ConfigError
from nasforge.platform.optuna_adapter import reread_trial, set_system_attr, storage_of
from nasforge.platform.strategies import create_sampler
from nasforge.search_spaces import create_space
from nasforge.search_spaces.morphism import Morph, apply_arch

SPACE = create_space("morphable", stages=2, max_depth=4, max_width=64)
optuna.logging.set_verbosity(optuna.logging.WARNING)


def score(arch) -> float:
    """Deeper and wider is better, up to a point; skips help a little."""
    layers = [x for st in arch for x in st]
    return sum(min(x.width, 40) / 40 for x in layers) - 0.3 * max(0, len(layers) - 5) + 0.2 * sum(
        x.skip is not None for x in layers)


def run(n: int, seed: int = 0, cap: int | None = None, storage=None):
    sampler = create_sampler({"name": "morphism", "options": {"expansions": 8, "branch": 4}}, SPACE, seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler, storage=storage)

    def objective(trial):
        arch = SPACE.arch(SPACE.validate(SPACE.suggest(trial)))
        parent = reread_trial(study, trial).system_attrs.get("nasforge:parent")
        if parent is not None:  # what the trial runner records on a child
            trial.set_user_attr("parent", parent)
        if cap is not None:
            trial.set_constraint("layers", sum(len(s) for s in arch) - cap)
        return score(arch)

    study.optimize(objective, n_trials=n)
    return study


def test_children_come_from_ranked_parents_by_their_stored_operations():
    study = run(12)
    trials = study.trials
    assert SPACE.arch(trials[0].system_attrs["nasforge:sample"]) == SPACE.seed_arch()
    children = [t for t in trials if t.system_attrs.get("nasforge:parent") is not None]
    assert len(children) >= 10
    for t in children:
        parent = trials[t.system_attrs["nasforge:parent"]]
        assert parent.number < t.number and parent.state.name == "COMPLETE"
        arch = SPACE.arch(parent.system_attrs["nasforge:sample"])
        for m in t.system_attrs["nasforge:morphs"]:
            arch = apply_arch(arch, Morph.from_list(m))
        assert SPACE.sample_of(arch) == t.system_attrs["nasforge:sample"]
    assert study.best_value > trials[0].value  # it climbs from the seed


def test_infeasible_trials_are_never_parents():
    study = run(14, cap=4)
    infeasible = {t.number for t in study.trials if t.constraints.get("layers", 0) > 0}
    assert infeasible  # the search reached past the cap
    parents = {t.system_attrs.get("nasforge:parent") for t in study.trials} - {None}
    assert parents and not parents & infeasible


def test_a_resumed_study_proposes_what_an_uninterrupted_one_does(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    run(5, storage=url)
    study = optuna.load_study(study_name=optuna.get_all_study_summaries(url)[0].study_name, storage=url,
                              sampler=create_sampler({"name": "morphism", "options": {"expansions": 8, "branch": 4}},
                                                     SPACE, seed=0))

    def objective(trial):
        return score(SPACE.arch(SPACE.validate(SPACE.suggest(trial))))

    study.optimize(objective, n_trials=4)
    straight = run(9)
    assert [t.system_attrs["nasforge:sample"] for t in study.trials] == \
        [t.system_attrs["nasforge:sample"] for t in straight.trials]


def test_retention_keeps_the_parent_of_a_running_child():
    study = run(4)
    child = study.ask()
    set_system_attr(storage_of(study), child, "nasforge:parent", 2)
    assert needed_parents(study.get_trials(deepcopy=False)) == {2}
    study.tell(child, 0.0)
    assert needed_parents(study.get_trials(deepcopy=False)) == set()


def test_family_tree_links_each_child_to_its_parent():
    from nasforge.platform.views.lineage import family_tree_figure

    study = run(6)
    fig = family_tree_figure(study, "score")
    lines = fig.data[0]
    pairs = {(lines.x[i], lines.x[i + 1]) for i in range(0, len(lines.x), 3)}
    assert pairs == {(t.system_attrs["nasforge:parent"], t.number) for t in study.trials
                     if t.system_attrs.get("nasforge:parent") is not None}


def test_morphism_refuses_a_space_without_morphism_operations():
    with pytest.raises(ConfigError, match="'convnet' lacks seed_arch, arch, sample_of, random_morph, morph_arch, "
                                          "morph_state$"):
        create_sampler("morphism", create_space("convnet"))


def test_a_retried_child_inherits_from_the_same_parent_by_the_same_operations():
    from nasforge.platform.engine.heartbeat import _enqueue_retry

    study = run(4)
    child = next(t for t in study.trials if t.system_attrs.get("nasforge:parent") is not None)
    number = _enqueue_retry(study, child, max_retry=1)
    retry = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    for key in ("nasforge:parent", "nasforge:morphs", "nasforge:epochs"):
        assert retry.system_attrs[key] == child.system_attrs[key]
    assert retry.params == child.params


def test_a_child_whose_parent_checkpoint_is_gone_trains_from_scratch_and_says_so(tmp_path):
    from nasforge.platform.engine.inheritance import inherit

    study = optuna.create_study(direction="maximize")
    sample = SPACE.sample_of(SPACE.seed_arch())
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.5, user_attrs={
        "sample": sample, "lineage": [], "checkpoint": str(tmp_path / "gone.ckpt")}))
    child = study.ask()
    set_system_attr(storage_of(study), child, "nasforge:parent", 0)
    assert inherit(None, child, network=object()) is False
    attrs = reread_trial(study, child).user_attrs
    assert attrs["parent"] == 0 and attrs["lineage"] == [0]
    assert attrs["note"] == "parent trial 0 has no checkpoint any more: trained from scratch"

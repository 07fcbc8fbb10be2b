"""One-shot (weight-sharing) sweeps: train a supernet once, search it, retrain the best.

A sweep file with ``mode: one_shot`` (options under ``oneshot:``, see `config.OneShotConfig`)
runs three phases, each resumable, all in the sweep's run folder and storage:

1. **Supernet.** The space builds its supernet (``space.build_supernet``); the task's
   LightningModule trains it as its injected network, unchanged, while `SinglePathSampling`
   activates one uniformly drawn path per batch, seeded by the global step so that every DDP
   rank trains the same path (SPOS, Guo et al. 2020); with ``sampling: fair``, in rounds where
   every choice of every decision trains once (FairNAS, Chu et al. 2021); or, with ``sampling: controller``, the
   RL controller draws the paths and learns from validation batches (ENAS, Pham et al. 2018;
   its episodes are the trials of study ``<name>.controller``, rank 0 broadcasts each path).
   With ``trainer.devices > 1`` the ranks are spawned processes (gloo on the CPU). The weights
   go to ``supernet/supernet.pt``.
2. **Search.** An ordinary Optuna study, ``<name>.search``, in the same storage, with the
   sweep's strategy as its sampler (TPE, evolution, the controller, ... unchanged): each trial's
   value is, by ``oneshot.rank`` (`oneshot_rank.py`), the sample's ``val/acc`` with inherited
   weights after batch-norm recalibration (`InheritedWeightScorer`), the zero-cost ensemble of
   its untrained network, or both combined, ranked in a fixed reference pool scored up front.
   Trials carry ``sample``/``genotype``/``metrics`` (``supernet/val_acc``, ``proxy/*``) like any
   trial, so leaderboards, reports and optuna-dashboard read them as they read any study.
3. **Retrain.** The ``top_k`` best distinct samples are enqueued into the sweep's own study
   and trained from scratch by `run_sweep` (full ``trainer.max_epochs``), so the sweep ends
   with ordinary trials, checkpoints and ``nasforge promote NAME --best``.

Path sampling and the inherited-weight scorer live in `single_path.py`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from nasforge.platform.console import Bar
from nasforge.platform.engine.config import SweepConfig
from nasforge.platform.errors import ConfigError

SUPERNET_DIR = "supernet"
SUPERNET_FILE = "supernet.pt"


def search_study_name(name: str) -> str:
    return f"{name}.search"


def load_search_study(name: str, storage_url: str):
    """The search study of one-shot sweep ``name`` in its storage, or None before the search started."""
    from nasforge.platform.engine.storage import load_study_if_exists

    return load_study_if_exists(search_study_name(name), storage_url)


def controller_study_name(name: str) -> str:
    """The ENAS controller's episodes while the supernet trains (``sampling: controller``)."""
    return f"{name}.controller"


def _epoch_bar_callback(bar: Bar):
    import lightning as L

    class EpochBar(L.Callback):
        def on_validation_end(self, trainer, pl_module):
            acc = trainer.callback_metrics.get("val/acc")
            status = f"one-path val/acc {float(acc):.3f}" if acc is not None else ""
            bar.update(trainer.current_epoch + 1, status=status)

    return EpochBar()


# ----------------------------------------------------------------------------- 1. supernet
def _ddp_strategy(cfg: SweepConfig):
    """Spawned ranks (the parent gets the weights back); inactive choices get no gradient, so
    DDP must look for unused parameters; every rank's path is the same, so they agree."""
    from lightning.pytorch.strategies import DDPStrategy

    cpu = cfg.trainer.accelerator == "cpu"
    return DDPStrategy(
        start_method="spawn",
        find_unused_parameters=True,
        process_group_backend="gloo" if cpu else None,
    )


def _check_resumed(folder: str, cfg: SweepConfig) -> None:
    """A trained supernet is reused only for the same training settings."""
    with open(os.path.join(folder, "supernet.json")) as f:
        done = json.load(f)
    o = cfg.oneshot
    for key, want in (("epochs", o.epochs), ("sampling", o.sampling)):
        if done.get(key) != want:
            raise ConfigError(
                f"oneshot.{key}: the supernet in {folder} was trained with {done.get(key)!r}, "
                f"not {want!r}; use --name NEW for a new sweep (or delete the run folder)"
            )


def train_supernet(ctx, show_progress: bool = False, console=None, record_paths: bool = False):
    """Train (or load, when ``supernet/supernet.pt`` exists) the sweep's supernet; return the
    task module holding it and the set-up data module."""
    import lightning as L
    import torch

    from nasforge.platform.engine.assembly import create_trainer
    from nasforge.platform.engine.callbacks import FiniteLossGuard
    from nasforge.platform.engine.single_path import ControllerPathSampling, SinglePathSampling
    from nasforge.platform.engine.assembly import TrialAssembly, data_shape
    from nasforge.platform.engine.trial import quiet_libraries, set_cpu_threads

    quiet_libraries()
    cfg, o = ctx.cfg, ctx.cfg.oneshot
    folder = os.path.join(ctx.run_dir, SUPERNET_DIR)
    os.makedirs(folder, exist_ok=True)
    weights = os.path.join(folder, SUPERNET_FILE)
    set_cpu_threads(cfg.trainer.cpu_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    build = TrialAssembly(ctx, {})  # the task's fixed init args; the supernet holds every path
    dm = build.datamodule()
    net = ctx.space.build_supernet(*data_shape(dm))
    module = build.module(net, dm)
    if os.path.exists(weights):  # resumed: the supernet is trained already
        _check_resumed(folder, cfg)
        net.load_state_dict(torch.load(weights, map_location="cpu"))
        dm.prepare_data()
        dm.setup("fit")
        return module, dm

    t = cfg.trainer
    record = folder if record_paths else None
    if o.sampling == "controller":
        from nasforge.platform.engine.ddp import storage_url_of

        paths = ControllerPathSampling(
            ctx.space,
            storage_url_of(ctx),
            controller_study_name(cfg.name),
            cfg.seed,
            every=o.controller_every,
            record_dir=record,
        )
    else:
        paths = SinglePathSampling(ctx.space, cfg.seed, record_dir=record, fair=o.sampling == "fair")
    callbacks: list[Any] = [paths, FiniteLossGuard()]
    bar = Bar("supernet epochs", o.epochs, show_progress and t.devices == 1, console)
    if bar.enabled:
        callbacks.append(_epoch_bar_callback(bar))
    trainer = create_trainer(t, max_epochs=o.epochs, strategy=_ddp_strategy(cfg) if t.devices > 1 else "auto",
                             callbacks=callbacks, default_root_dir=folder)
    try:
        trainer.fit(module, datamodule=dm)
    finally:
        bar.close()
    with open(os.path.join(folder, "supernet.json"), "w") as f:
        json.dump(
            {
                "epochs": o.epochs,
                "sampling": o.sampling,
                "devices": t.devices,
                "global_step": trainer.global_step,
                "val/acc (one path)": float(trainer.callback_metrics.get("val/acc", float("nan"))),
            },
            f,
        )
    tmp = f"{weights}.{os.getpid()}.tmp"
    torch.save(net.state_dict(), tmp)
    os.replace(tmp, weights)  # written last and at once: its presence means "trained"
    if t.devices > 1:  # spawned ranks ran the fit; this process only holds the returned weights
        dm.setup("fit")
    return module, dm


# ----------------------------------------------------------------------------- 2. search
def open_search_study(cfg: SweepConfig, space, storage_url: str, seed: int | None = None):
    """The search study (made, or opened when resumed: then with the same ``oneshot.rank``)."""
    import optuna

    from nasforge.platform.engine.oneshot_rank import VALUE_METRIC
    from nasforge.platform.strategies import create_sampler
    from nasforge.platform.engine.storage import create_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = create_sampler(
        cfg.strategy, space, cfg.seed if seed is None else seed, cfg.directions
    )
    study = optuna.create_study(
        study_name=search_study_name(cfg.name),
        storage=create_storage(storage_url),
        sampler=sampler,
        directions=cfg.directions,
        load_if_exists=True,
    )
    rank = cfg.oneshot.rank
    if study.metric_names is None:
        study.set_metric_names([VALUE_METRIC[rank]])
        study.set_user_attr("nasforge_config", cfg.to_dict())
        study.set_user_attr("oneshot_phase", "search with inherited weights")
        study.set_user_attr("oneshot_rank", rank)
    done = study.user_attrs.get("oneshot_rank", "supernet")
    if done != rank:
        raise ConfigError(f"oneshot.rank: the search in {storage_url} ranked by {done!r}, not {rank!r}; set "
                          f"oneshot.rank: {done} to resume it, or use --name NEW for a new sweep")
    return study


def search_supernet(
    study,
    space,
    scorer,
    n_trials: int,
    metric: str = "val/acc",
    show_progress: bool = False,
    console=None,
    label: str = "search (inherited weights)",
):
    """Run ``study`` until ``n_trials`` trials are COMPLETE, each scored by ``scorer.score``: a
    float, or a dict of metrics holding ``metric`` (all recorded as the trial's ``metrics``).
    Samples already scored are not scored again, resumed or not: the score is deterministic."""
    from nasforge.search_spaces import SampleValidationError
    from optuna.trial import TrialState

    cache = {
        t.user_attrs["key"]: t.user_attrs.get("metrics") or {metric: t.value}
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if "key" in t.user_attrs
    }
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    bar = Bar(label, n_trials, show_progress, console)
    try:
        while done < n_trials:
            trial = study.ask()
            try:
                sample = space.validate(space.suggest(trial))
            except SampleValidationError as e:
                trial.set_user_attr("fail_reason", f"invalid sample: {e}")
                study.tell(trial, state=TrialState.FAIL)
                continue
            key = space.key(sample)
            if key not in cache:
                scored = scorer.score(sample)
                cache[key] = dict(scored) if isinstance(scored, dict) else {metric: float(scored)}
            trial.set_user_attr("sample", sample)
            trial.set_user_attr("genotype", space.to_json(sample))
            trial.set_user_attr("key", key)
            trial.set_user_attr("metrics", cache[key])
            study.tell(trial, cache[key][metric])
            done += 1
            bar.update(done, status=f"best {metric}={study.best_value:.4f}")
    finally:
        bar.close()
    return study


def top_samples(study, k: int) -> list[tuple[dict[str, Any], float]]:
    """The ``k`` best distinct samples of a search study, best first."""
    from optuna.trial import TrialState

    best: dict[str, tuple[dict[str, Any], float]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        key = t.user_attrs.get("key") or json.dumps(t.params, sort_keys=True)
        if key not in best or t.value > best[key][1]:
            best[key] = (t.user_attrs.get("sample") or dict(t.params), t.value)
    sign = -1 if study.directions[0].name == "MAXIMIZE" else 1
    return sorted(best.values(), key=lambda sv: sign * sv[1])[:k]


# ----------------------------------------------------------------------------- 3. retrain
def retrain_config(cfg: SweepConfig) -> SweepConfig:
    """The retrain sweep: the same file, budget = ``oneshot.top_k`` trials."""
    return dataclasses.replace(
        cfg, budget=dataclasses.replace(cfg.budget, trials=cfg.oneshot.top_k)
    )


def enqueue_top(study, top: list, rank_attr: str = "oneshot_rank", value_attr: str = "supernet/val_acc") -> int:
    """Enqueue the samples not yet in ``study`` (by params), with rank and score; returns how many
    (enqueued trials not yet run keep their sample in ``fixed_params``)."""
    seen = [
        t.params or t.system_attrs.get("fixed_params") for t in study.get_trials(deepcopy=False)
    ]
    added = 0
    for rank, (sample, value) in enumerate(top, start=1):
        if sample in seen:
            continue
        study.enqueue_trial(sample, user_attrs={rank_attr: rank, value_attr: value})
        added += 1
    return added


# ----------------------------------------------------------------------------- the sweep
def run_oneshot(
    cfg: SweepConfig, root: str, show_progress: bool = True, console=None
) -> dict[str, Any]:
    """All three phases (each resumes from what the run folder and storage hold). Returns
    {"supernet": module, "search": study, "retrain": study}."""
    from nasforge.platform.engine.oneshot_rank import create_ranked_scorer
    from nasforge.platform.engine.sweep import open_study, run_sweep, sampler_seed, start_run

    if cfg.mode != "one_shot":
        raise ConfigError(f"mode: run_oneshot needs mode one_shot, got {cfg.mode!r}")
    rundir, storage_url, ctx = start_run(cfg, root)
    o = cfg.oneshot

    module, dm = train_supernet(ctx, show_progress, console)
    search = open_search_study(cfg, ctx.space, storage_url)  # before scoring: a changed rank fails first
    scorer = create_ranked_scorer(ctx, module, dm, os.path.join(ctx.run_dir, SUPERNET_DIR), show_progress, console)
    seed = sampler_seed(cfg.seed, len(search.get_trials(deepcopy=False)), None, cfg.strategy.name)
    if seed != cfg.seed:  # resumed: a sampler seeded alike would redraw the samples it drew
        search = open_search_study(cfg, ctx.space, storage_url, seed)
    label = "search (inherited weights)" if o.rank == "supernet" else f"search (ranked by {o.rank})"
    search_supernet(search, ctx.space, scorer, o.search_trials, scorer.metric, show_progress, console, label)

    rcfg = retrain_config(cfg)
    retrain = open_study(rcfg, ctx, storage_url)
    value_attr = "supernet/val_acc" if o.rank == "supernet" else scorer.metric  # the retrain trials' search score
    enqueue_top(retrain, top_samples(search, o.top_k), value_attr=value_attr)
    retrain = run_sweep(rcfg, root=root, show_progress=show_progress, console=console)
    return {"supernet": module, "search": search, "retrain": retrain}

"""Promotion and loading: a sweep's trial becomes a registry version, and a version becomes a
network again.

`promote` packages a trial (weights of the network only, genotype, resolved config, metrics,
diagram) as the next version of a model in `versions.Registry`; `load` rebuilds the network from
the genotype, verifies the manifest and loads the weights; `evaluate` runs the sweep's own task
over the same validation split to check a version against its recorded metric. The layout on
disk and the version/alias rules are in `versions`. Adaptive versions (per-input block skipping,
made by `adaptive.promote_adaptive`) record ``adaptive`` in model.json: `load` wraps the rebuilt
network in its decider, `evaluate` also re-counts the mean FLOPs per input.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from dataclasses import dataclass
from typing import Any, Iterable

from nasforge.platform.errors import NasforgeError, UsageError
from nasforge.platform.registry.versions import (
    CONFIG, FORMAT, GENOTYPE, LATEST, MANIFEST, META, VERSION_RE, WANDB_STATE, WEIGHTS, Registry, Version,
    _check_name,
)


# ----------------------------------------------------------------------------- rebuilding
def _import(meta: dict[str, Any], class_path: str, what: str) -> type:
    """A class of the version's task, imported the way the sweep imported it; a user's code that is
    not importable here is a UsageError that says so (and what needs no code)."""
    from nasforge.platform.engine.resolve import add_import_paths, import_class
    from nasforge.platform.errors import ConfigError

    add_import_paths(meta.get("import_paths") or [])
    try:
        return import_class(class_path, what)
    except ConfigError as e:
        raise _not_importable(str(e)) from None


def _not_importable(text: str) -> UsageError:
    return UsageError(f"{text} (this model was trained with that code: install it or put its folder on "
                      "PYTHONPATH; a file from `nasforge registry export` (ONNX, TorchScript) needs no code)")


def create_datamodule(meta: dict[str, Any], path: str | None = None):
    """The data module a version was validated with (same split and seed; no augmentation)."""
    from nasforge.platform.engine.assembly import instantiate

    d = meta["data"]
    args = dict(d["init_args"])
    if path is not None:
        args["path"] = path
    if "augment" in args:
        args["augment"] = 0.0
    return instantiate(_import(meta, d["class_path"], "data.class_path"), args,
                  {"seed": meta["seed"]} if "seed" in d.get("injected", ()) else {})


def _build(meta: dict[str, Any], genotype: dict[str, Any]):
    """The network from the genotype, or, for a module that builds its own (no network argument),
    the LightningModule from its class path and init args."""
    from nasforge.platform.engine.resolve import add_import_paths
    from nasforge.search_spaces import create_composite

    from nasforge.platform.engine.assembly import build_network

    task = meta["task"]
    if not task.get("network_arg"):
        return _create_module(meta, None)
    add_import_paths(meta.get("import_paths") or [])
    try:
        space = create_composite(genotype["space"])
    except ImportError as e:
        paths = [p["class_path"] for p in genotype["space"] if p.get("class_path")]
        raise _not_importable(f"space: cannot import {', '.join(paths) or 'the space'}: {type(e).__name__}: {e}") from None
    return build_network(space, genotype["sample"], tuple(meta["input_shape"]), int(meta["num_classes"]),
                         task_class(meta), task["init_args"])


def _check_kept(ckpt: str, number: int, name: str, cfg) -> None:
    if not os.path.exists(ckpt):
        raise UsageError(f"trial {number} of {name!r} has no checkpoint to promote any more ({ckpt} was removed: "
                         f"checkpoints.keep_top={cfg.checkpoints.keep_top} keeps the best trials' only)")


def task_class(meta: dict[str, Any]) -> type:
    """The LightningModule class a version was trained with (imported as the sweep imported it)."""
    return _import(meta, meta["task"]["class_path"], "task.class_path")


def _create_module(meta: dict[str, Any], network):
    from nasforge.platform.engine.assembly import instantiate

    task = meta["task"]
    injected: dict[str, Any] = {task["network_arg"]: network} if task.get("network_arg") else {}
    if "num_classes" in task.get("injected", ()):
        injected["num_classes"] = meta["num_classes"]
    return instantiate(task_class(meta), task["init_args"], injected)


# ----------------------------------------------------------------------------- promote
def _existing(reg: Registry, model: str, done: Version, aliases: list[str]) -> "Promotion":
    """The trial's version made before: no new one, the aliases moved to it."""
    for a in aliases:
        reg.set_alias(model, a, done.version)
    return Promotion(version=done, meta=done.meta(), aliases=aliases, wandb_message="", existing=True)


@dataclass
class Promotion:
    version: Version
    meta: dict[str, Any]
    aliases: list[str]
    wandb_message: str
    existing: bool = False  # the trial was promoted before: no new version, aliases moved to it


def pick_trial(study, trial: int | None = None, best: bool = False):
    """The trial to promote: number ``trial``, or the best COMPLETE one (for several objectives,
    the Pareto-optimal trial best on the first objective)."""
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if trial is not None:
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        if trial not in by_number:
            raise UsageError(f"sweep {study.study_name!r} has no trial {trial}; trials: 0..{len(by_number) - 1}")
        t = by_number[trial]
        if t.state != optuna.trial.TrialState.COMPLETE:
            raise UsageError(f"trial {trial} of {study.study_name!r} is {t.state.name}; only COMPLETE trials can be promoted")
        return t
    if not complete:
        raise UsageError(f"sweep {study.study_name!r} has no COMPLETE trial to promote")
    if len(study.directions) == 1:
        return study.best_trial
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(study.best_trials, key=lambda t: sign * t.values[0])


def promote(name: str, trial: int | None = None, best: bool = False, model: str | None = None,
            aliases: Iterable[str] = (), root: str = "runs", storage: str | None = None,
            registry: str | os.PathLike | None = None, link_wandb: bool = True) -> Promotion:
    """Package a trial of sweep ``name`` as the next version of ``model`` (default: the sweep
    name) and point ``aliases`` at it. Returns what was written."""
    import torch

    from nasforge.platform.engine.assembly import TrialAssembly, data_shape
    from nasforge.platform.engine.inheritance import network_state
    from nasforge.platform.engine.resolve import is_tabular, space_parts
    from nasforge.platform.engine.run_folder import open_run
    from nasforge.platform.engine.locks import budget_lock
    from nasforge.platform.engine.trial import TrialContext

    if trial is not None and best:
        raise UsageError("give --trial N or --best, not both")
    aliases = list(dict.fromkeys(aliases))
    for a in aliases:
        _check_name("alias", a)
        if a == LATEST or VERSION_RE.match(a):
            raise UsageError(f"alias {a!r} is reserved (latest and vN name versions); choose another")
    model = _check_name("model name", model or name)
    run = open_run(name, root, storage)
    cfg = run.cfg
    if is_tabular(cfg):
        raise UsageError(f"sweep {name!r} is a tabular benchmark ({cfg.task.name}): its trials train no weights to promote")
    t = pick_trial(run.study, trial, best)
    reg = Registry(registry)
    # Promoting a trial twice makes no duplicate version. This look needs no lock and spares the
    # rebuild below when the trial was promoted before; the one under the registry lock decides.
    done = reg.find_trial(model, name, run.storage_url, t.number)
    if done is not None:
        return _existing(reg, model, done, aliases)
    attrs = t.user_attrs
    ckpt = attrs.get("checkpoint")
    if not ckpt:
        raise UsageError(f"trial {t.number} of {name!r} has no checkpoint to promote (none recorded)")
    sample = attrs.get("sample")
    if sample is None:
        raise UsageError(f"trial {t.number} of {name!r} has no recorded sample")

    ctx = TrialContext.create(cfg, run.run_dir)
    # under the sweep's budget lock: a running sweep's retention policy cannot delete it meanwhile
    # (read before the data module is built, so a removed checkpoint costs nothing)
    with budget_lock(run.storage_url, run.run_dir, name):
        _check_kept(ckpt, t.number, name, cfg)
        state = network_state(ckpt, ctx.resolved.network_arg)

    # Rebuild the network exactly as the runner did, and check the weights fit it strictly.
    parts = space_parts(cfg)
    sample = ctx.space.validate(sample)
    build = TrialAssembly(ctx, sample)
    module_opts, data_opts = build.module_options, build.data_options
    dm = build.datamodule()
    input_shape, num_classes = data_shape(dm)
    net = build.network(dm)
    if net is None:  # a module that builds its own network: its whole state is the model
        net = build.module(None, dm)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise NasforgeError(f"trial {t.number}: the checkpoint does not fit the network its genotype builds: "
                            f"{str(e).splitlines()[0]}") from None
    r = ctx.resolved
    data = {"name": cfg.task.data.name if cfg.task.data.class_path is None else r.data.class_path,
            "class_path": r.data.class_path, "init_args": data_opts, "injected": list(r.data.injected),
            "path": ctx.data_path}

    with reg.lock(model):  # a concurrent promotion of this trial that got here first made its version
        done = reg.find_trial(model, name, run.storage_url, t.number)
        if done is not None:
            return _existing(reg, model, done, aliases)
        v = reg.allocate(model)
        try:
            torch.save(state, os.path.join(v.path, WEIGHTS))
            genotype = {"space": parts, "sample": sample, "key": ctx.space.key(sample),
                        "genotype": attrs.get("genotype")}
            with open(os.path.join(v.path, GENOTYPE), "w") as f:
                json.dump(genotype, f, indent=2, sort_keys=True)
            with open(os.path.join(v.path, CONFIG), "w") as f:
                f.write(cfg.to_yaml())
            trial_dir = attrs.get("trial_dir") or run.trial_dir(t.number)
            # the architecture diagrams the runner drew (space.draw), not every picture in the folder
            drawn = [p for p in attrs.get("diagrams") or [] if os.path.isfile(p)]
            if not drawn and os.path.isdir(trial_dir):
                drawn = [os.path.join(trial_dir, f) for f in sorted(os.listdir(trial_dir))
                         if f.startswith("architecture") and f.endswith((".png", ".svg"))]
            diagrams = []
            for path in drawn:
                fname = os.path.basename(path)
                if fname not in (WEIGHTS, META, GENOTYPE, CONFIG, MANIFEST, WANDB_STATE):
                    shutil.copyfile(path, os.path.join(v.path, fname))
                    diagrams.append(fname)
            preprocessing = {"scale": 1.0 / 255.0}
            for key in ("mean", "std"):
                if hasattr(dm, key):
                    preprocessing[key] = list(getattr(dm, key))
            meta = {
                "format": FORMAT,
                "model": model,
                "version": v.version,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "sweep": {"name": name, "run_dir": run.run_dir, "storage": run.storage_url},
                "trial": {"number": t.number, "values": t.values, "params": t.params,
                          "checkpoint": os.path.abspath(ckpt), "trial_dir": trial_dir,
                          "wandb_run_dir": attrs.get("wandb_run_dir")},
                "objectives": [{"metric": o.metric, "direction": o.direction} for o in cfg.objectives],
                "metrics": attrs.get("metrics", {}),
                "task": {"name": r.name, "class_path": r.model.class_path, "init_args": module_opts,
                         "network_arg": r.network_arg, "injected": list(r.model.injected)},
                "data": data,  # class path and init args (augmentation is off when validating)
                "import_paths": cfg.import_paths,
                "seed": cfg.seed,
                "trainer": {"limit_val_batches": cfg.trainer.limit_val_batches,
                            "precision": cfg.trainer.precision},
                "input_shape": list(input_shape),
                "num_classes": num_classes,
                "num_params": sum(p.numel() for p in net.parameters()),
                "preprocessing": preprocessing,
                "diagrams": diagrams,
                "tracking": {"project": cfg.tracking.project, "entity": cfg.tracking.entity,
                             "mode": cfg.tracking.mode},
            }
            with open(os.path.join(v.path, META), "w") as f:
                json.dump(meta, f, indent=2, sort_keys=False, default=str)
            reg.seal(v)
        except BaseException:
            shutil.rmtree(v.path, ignore_errors=True)  # an unsealed version is never resolved anyway
            raise
        for a in aliases:
            reg.set_alias(model, a, v.version)
    msg = ""
    if link_wandb:
        from nasforge.platform.registry.wandb_link import link_on_promotion

        msg = link_on_promotion(v, meta, aliases)
    return Promotion(version=v, meta=meta, aliases=aliases, wandb_message=msg)


# ----------------------------------------------------------------------------- load
def load_version(ref: str, registry: str | os.PathLike | None = None, map_location: str = "cpu"):
    """(module in eval mode, Version) for ``MODEL[:VERSION|:ALIAS]``, integrity checked."""
    import torch

    v = Registry(registry).resolve(ref)
    v.verify()
    meta = v.meta()
    with open(os.path.join(v.path, GENOTYPE)) as f:
        genotype = json.load(f)
    net = _build(meta, genotype)
    if meta.get("adaptive"):  # a version made by `adaptive.promote_adaptive`: blocks skip per input
        from nasforge.search_spaces.gated import AdaptiveResNet

        net = AdaptiveResNet(net, **meta["adaptive"]["network"])
    state = torch.load(os.path.join(v.path, WEIGHTS), map_location=map_location, weights_only=True)
    net.load_state_dict(state, strict=True)
    net.eval()
    return net, v


def load(ref: str, registry: str | os.PathLike | None = None, map_location: str = "cpu"):
    """The ``nn.Module`` of ``MODEL[:VERSION|:ALIAS]`` rebuilt from its genotype, in eval mode.
    Inputs are what the data module feeds: pixels scaled to [0, 1] then normalised with the
    ``preprocessing`` mean/std recorded in the version's model.json."""
    return load_version(ref, registry, map_location)[0]


def evaluate(ref: str, registry: str | os.PathLike | None = None, data_path: str | None = None) -> dict[str, float]:
    """Validate a registered model with the sweep's own task and data module (same seeded split,
    same ``limit_val_batches``); returns the logged ``val/*`` metrics."""
    from nasforge.platform.engine.assembly import create_trainer
    from nasforge.platform.engine.trial import quiet_libraries

    quiet_libraries()  # no GPU/TPU banners or third-party deprecation notices for one validation
    net, v = load_version(ref, registry)
    meta = v.meta()
    dm = create_datamodule(meta, data_path)
    module = net if not meta["task"].get("network_arg") else _create_module(meta, net)
    trainer = create_trainer(limit_val_batches=meta["trainer"].get("limit_val_batches"))
    out = trainer.validate(module, datamodule=dm, verbose=False)
    result = {k: float(v_) for k, v_ in out[0].items()}
    if meta.get("adaptive"):  # its cost depends on the inputs: re-count the FLOPs each one ran
        from nasforge.platform.engine.adaptive_cost import remeasure

        m = remeasure(net, dm, meta)
        result.update({k: float(x) for k, x in m.items() if k.startswith("cost/flops")})
    return result

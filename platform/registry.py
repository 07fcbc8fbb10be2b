"""The model registry: trials promoted to numbered, checksummed versions of named models.

`promote(sweep, trial=N | best=True, model=..., aliases=[...])` packages one trial of a sweep as
the next version of a model in a registry folder on disk (default ``./registry``; the
``NASFORGE_REGISTRY`` environment variable or ``--registry`` moves it)::

    registry/<model>/
        versions/v1/weights.pt     state_dict of the network only (plain tensors: it loads with
                                   torch.load(weights_only=True))
                    genotype.json  the space parts and the sample that rebuild the network
                    config.yaml    the sweep's resolved config (task, data, trainer, ...)
                    model.json     metrics, task and data, input shape, classes, preprocessing,
                                   the sweep, trial and checkpoint it came from
                    diagram.png    the architecture diagram, when the trial drew one
                    MANIFEST.json  sha256 and size of every file above; written last, so a
                                   version without it is incomplete and never resolved
                    wandb.json     W&B link state (mutable, so outside the manifest)
        aliases/<alias>            one line "vN"; moved by writing a temp file + os.replace

Versions are allocated with ``os.mkdir`` (atomic and exclusive, also on NFS): two concurrent
promotions get two distinct versions. Aliases move atomically, one file per alias, so moving
``production`` never loses a concurrent move of ``best``. ``MODEL`` alone means its latest
complete version; ``MODEL:v3`` a version; ``MODEL:production`` an alias.

`load("MODEL:ALIAS")` rebuilds the network from the genotype (`create_composite` + ``build``),
verifies every file against the manifest (a modified file raises `IntegrityError`), loads the
weights strictly and returns the module in eval mode. `evaluate` runs the sweep's own task and
data module over the same validation split, to check a promoted model against its recorded
metric. Linking to the W&B Registry is in `wandb_registry`; export to ONNX/TorchScript in
`model_export`.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Iterable

from .errors import NasforgeError, UsageError

FORMAT = "nasforge-model/1"
MANIFEST = "MANIFEST.json"
WEIGHTS = "weights.pt"
META = "model.json"
GENOTYPE = "genotype.json"
CONFIG = "config.yaml"
WANDB_STATE = "wandb.json"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
VERSION_RE = re.compile(r"^v([1-9][0-9]*)$")
LATEST = "latest"


class IntegrityError(NasforgeError):
    """A registry file does not match the sha256 recorded in the version's manifest."""


def default_root() -> str:
    return os.environ.get("NASFORGE_REGISTRY") or "registry"


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new content, never half."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _check_name(kind: str, name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise UsageError(f"{kind} {name!r} is not valid: use letters, digits, '_', '.', '-' (no slashes)")
    return name


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``"MODEL[:VERSION|:ALIAS]"`` -> (model, "vN" | alias | None)."""
    model, _, tag = ref.partition(":")
    _check_name("model name", model)
    if tag:
        _check_name("version or alias", tag)
    return model, (tag or None)


@dataclass
class Version:
    model: str
    version: str  # "v3"
    path: str

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"

    def meta(self) -> dict[str, Any]:
        with open(os.path.join(self.path, META)) as f:
            return json.load(f)

    def manifest(self) -> dict[str, Any]:
        with open(os.path.join(self.path, MANIFEST)) as f:
            return json.load(f)

    def wandb_state(self) -> dict[str, Any]:
        p = os.path.join(self.path, WANDB_STATE)
        if not os.path.exists(p):
            return {}
        with open(p) as f:
            return json.load(f)

    def set_wandb_state(self, state: dict[str, Any]) -> None:
        _write_atomic(os.path.join(self.path, WANDB_STATE), json.dumps(state, indent=2) + "\n")

    def verify(self) -> None:
        """Check every file of the manifest; raise IntegrityError naming the first that differs."""
        try:
            files = self.manifest()["files"]
        except (OSError, ValueError, KeyError):
            raise IntegrityError(f"{self.ref}: {MANIFEST} is missing or unreadable; refusing to load") from None
        for req in (WEIGHTS, META, GENOTYPE):
            if req not in files:
                raise IntegrityError(f"{self.ref}: the manifest does not list {req}; refusing to load")
        for name, rec in files.items():
            p = os.path.join(self.path, name)
            if not os.path.isfile(p):
                raise IntegrityError(f"{self.ref}: {name} is missing from {self.path}; refusing to load")
            digest = sha256_file(p)
            if digest != rec["sha256"]:
                raise IntegrityError(
                    f"{self.ref}: {name} failed its integrity check (sha256 {digest[:12]}... but the "
                    f"manifest records {rec['sha256'][:12]}...): the file changed after promotion; "
                    "refusing to load it"
                )


class Registry:
    """A registry folder on disk. All writes are atomic; reads never lock."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = os.path.abspath(os.fspath(root) if root is not None else default_root())

    # -- layout -----------------------------------------------------------------------------
    def model_dir(self, model: str) -> str:
        return os.path.join(self.root, _check_name("model name", model))

    def models(self) -> list[str]:
        if not os.path.isdir(self.root):
            return []
        return sorted(m for m in os.listdir(self.root)
                      if NAME_RE.match(m) and os.path.isdir(os.path.join(self.root, m, "versions")))

    def versions(self, model: str, complete_only: bool = True) -> list[Version]:
        vdir = os.path.join(self.model_dir(model), "versions")
        if not os.path.isdir(vdir):
            return []
        out = []
        for d in os.listdir(vdir):
            m = VERSION_RE.match(d)
            if not m:
                continue
            p = os.path.join(vdir, d)
            if complete_only and not os.path.exists(os.path.join(p, MANIFEST)):
                continue
            out.append((int(m.group(1)), Version(model, d, p)))
        return [v for _, v in sorted(out, key=lambda t: t[0])]

    def aliases(self, model: str) -> dict[str, str]:
        adir = os.path.join(self.model_dir(model), "aliases")
        if not os.path.isdir(adir):
            return {}
        out = {}
        for a in sorted(os.listdir(adir)):
            if a.startswith(".") or not NAME_RE.match(a):
                continue
            with open(os.path.join(adir, a)) as f:
                out[a] = f.read().strip()
        return out

    def resolve(self, ref: str) -> Version:
        """``MODEL``, ``MODEL:vN``, ``MODEL:ALIAS`` or ``MODEL:latest`` -> a complete Version."""
        model, tag = parse_ref(ref)
        versions = self.versions(model)
        if not versions:
            known = self.models()
            raise UsageError(
                f"no model named {model!r} in the registry {self.root}"
                + (f"; models there: {', '.join(known)}" if known else " (it is empty; see `nasforge promote`)")
            )
        if tag is None or tag == LATEST:
            return versions[-1]
        by_name = {v.version: v for v in versions}
        if VERSION_RE.match(tag):
            if tag not in by_name:
                raise UsageError(f"{model} has no version {tag}; versions: {', '.join(by_name)}")
            return by_name[tag]
        aliases = self.aliases(model)
        if tag not in aliases:
            raise UsageError(
                f"{model} has no alias {tag!r}; aliases: {', '.join(f'{a}->{v}' for a, v in aliases.items()) or 'none'}"
                f" (versions: {', '.join(by_name)})"
            )
        if aliases[tag] not in by_name:
            raise UsageError(f"alias {model}:{tag} points to {aliases[tag]}, which does not exist")
        return by_name[aliases[tag]]

    # -- writes -----------------------------------------------------------------------------
    def set_alias(self, model: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version`` atomically (readers see the old or the new target)."""
        _check_name("alias", alias)
        if alias == LATEST or VERSION_RE.match(alias):
            raise UsageError(f"alias {alias!r} is reserved (latest and vN name versions); choose another")
        if version not in {v.version for v in self.versions(model)}:
            raise UsageError(f"{model} has no complete version {version}")
        adir = os.path.join(self.model_dir(model), "aliases")
        os.makedirs(adir, exist_ok=True)
        _write_atomic(os.path.join(adir, alias), version + "\n")

    def allocate(self, model: str) -> Version:
        """Reserve the next version folder. ``os.mkdir`` fails if another process made it first,
        so concurrent promotions each get their own number."""
        vdir = os.path.join(self.model_dir(model), "versions")
        os.makedirs(vdir, exist_ok=True)
        taken = [int(m.group(1)) for d in os.listdir(vdir) if (m := VERSION_RE.match(d))]
        n = max(taken, default=0) + 1
        while True:
            path = os.path.join(vdir, f"v{n}")
            try:
                os.mkdir(path)
                return Version(model, f"v{n}", path)
            except FileExistsError:
                n += 1

    @staticmethod
    def seal(version: Version) -> dict[str, Any]:
        """Write the manifest (sha256 of every file) last: the version becomes visible."""
        files = {}
        for name in sorted(os.listdir(version.path)):
            p = os.path.join(version.path, name)
            if name in (MANIFEST, WANDB_STATE) or name.startswith(".") or not os.path.isfile(p):
                continue
            files[name] = {"sha256": sha256_file(p), "bytes": os.path.getsize(p)}
        manifest = {"format": FORMAT, "algorithm": "sha256", "files": files}
        _write_atomic(os.path.join(version.path, MANIFEST), json.dumps(manifest, indent=2) + "\n")
        return manifest


# ----------------------------------------------------------------------------- rebuilding
def create_datamodule(meta: dict[str, Any], path: str | None = None):
    """The data module a version was validated with (same split and seed; no augmentation)."""
    from .task_factory import DATASETS

    d = meta["data"]
    return DATASETS[d["name"]].load()(
        path=path if path is not None else d.get("path"), val_fraction=d["val_fraction"],
        subset=d.get("subset"), val_subset=d.get("val_subset"), num_workers=d.get("num_workers", 0),
        seed=meta["seed"], augment=0.0, **meta.get("data_options", {}), **(d.get("options") or {}),
    )


def _build(meta: dict[str, Any], genotype: dict[str, Any]):
    from nasforge.search_spaces import create_composite

    space = create_composite(genotype["space"])
    return space.build(genotype["sample"], tuple(meta["input_shape"]), int(meta["num_classes"]))


def _network_state(checkpoint_path: str) -> dict[str, Any]:
    """The ``network.`` part of a Lightning checkpoint's state_dict, keys without the prefix."""
    import torch

    try:
        ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except Exception:
        # A Lightning checkpoint may pickle objects outside torch's allow-list (callback state);
        # it is this sweep's own file, written by our runner.
        ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    state = ckpt.get("state_dict", ckpt)
    net = {k[len("network."):]: v.detach().clone() for k, v in state.items() if k.startswith("network.")}
    if not net:
        raise NasforgeError(f"{checkpoint_path}: no 'network.' weights in the checkpoint's state_dict")
    return net


# ----------------------------------------------------------------------------- promote
@dataclass
class Promotion:
    version: Version
    meta: dict[str, Any]
    aliases: list[str]
    wandb_message: str


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

    from .run_folder import open_run
    from .task_factory import TASKS
    from .trial_runner import TrialContext

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
    if TASKS[cfg.task.name].kind != "lightning":
        raise UsageError(f"sweep {name!r} is a tabular benchmark ({cfg.task.name}): its trials train no weights to promote")
    t = pick_trial(run.study, trial, best)
    attrs = t.user_attrs
    ckpt = attrs.get("checkpoint")
    if not ckpt or not os.path.exists(ckpt):
        raise UsageError(f"trial {t.number} of {name!r} has no checkpoint to promote ({ckpt or 'none recorded'})")
    sample = attrs.get("sample")
    if sample is None:
        raise UsageError(f"trial {t.number} of {name!r} has no recorded sample")

    # Rebuild the network exactly as the runner did, and check the weights fit it strictly.
    ctx = TrialContext.create(cfg, run.run_dir)
    parts = [{"name": p.name, "options": dict(p.options)} for p in cfg.space]
    sample = ctx.space.validate(sample)
    module_opts, data_opts, _ = ctx.split_options(sample)
    dm = ctx.datamodule(data_opts)
    input_shape, num_classes = tuple(int(s) for s in dm.input_shape), int(dm.num_classes)
    net = ctx.space.build(sample, input_shape, num_classes)
    state = _network_state(ckpt)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise NasforgeError(f"trial {t.number}: the checkpoint does not fit the network its genotype builds: "
                            f"{str(e).splitlines()[0]}") from None
    data = dict(vars(cfg.task.data))
    data["path"] = ctx.data_path
    data_opts = {k: v for k, v in data_opts.items() if k != "augment"}

    reg = Registry(registry)
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
            "task": {"name": cfg.task.name, "options": module_opts},
            "data": data,
            "data_options": data_opts,  # batch size etc. (augmentation is off when validating)
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
        from .wandb_registry import link_on_promotion

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
    import lightning as L

    from .task_factory import TASKS
    from .trial_runner import quiet_libraries

    quiet_libraries()  # no GPU/TPU banners or third-party deprecation notices for one validation
    net, v = load_version(ref, registry)
    meta = v.meta()
    dm = create_datamodule(meta, data_path)
    Task = TASKS[meta["task"]["name"]].load()
    module = Task(network=net, num_classes=meta["num_classes"], **meta["task"]["options"])
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=meta["trainer"].get("limit_val_batches"))
    out = trainer.validate(module, datamodule=dm, verbose=False)
    return {k: float(v_) for k, v_ in out[0].items()}

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
        .promote.lock              held while a promotion checks for its trial and writes a version

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

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Iterable

from nasforge.platform.errors import NasforgeError, UsageError

FORMAT = "nasforge-model/1"
MANIFEST = "MANIFEST.json"
WEIGHTS = "weights.pt"
META = "model.json"
GENOTYPE = "genotype.json"
CONFIG = "config.yaml"
WANDB_STATE = "wandb.json"
LOCK = ".promote.lock"
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new content, never half."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the rest of a version is 0644
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

    def find_trial(self, model: str, sweep: str, storage: str, trial: int) -> Version | None:
        """The complete version of ``model`` already promoted from this trial, if any."""
        for v in self.versions(model):
            m = v.meta()
            if (m["sweep"]["name"], m["sweep"].get("storage"), m["trial"]["number"]) == (sweep, storage, trial):
                return v
        return None

    @contextlib.contextmanager
    def lock(self, model: str):
        """Hold ``<model>/.promote.lock``: promotions of one model take it around 'find this trial's
        version, else write a new one', so two concurrent promotions of one trial make one version."""
        from nasforge.platform.engine.locks import file_lock

        os.makedirs(self.model_dir(model), exist_ok=True)
        with file_lock(os.path.join(self.model_dir(model), LOCK)):
            yield

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

"""`nasforge sweep promote` (alias `nasforge promote`) and `nasforge registry ...`: the model
registry from the command line.

    nasforge sweep promote NAME [--trial N | --best] [--model MODEL] [--alias ALIAS ...]
    nasforge registry list
    nasforge registry show MODEL[:VERSION|:ALIAS] [--json]
    nasforge registry alias MODEL:VERSION ALIAS [ALIAS ...]
    nasforge registry load MODEL[:VERSION|:ALIAS]
    nasforge registry evaluate MODEL[:VERSION|:ALIAS]
    nasforge registry adapt MODEL[:VERSION|:ALIAS] [--kind policy|gates] [--cost-weight W] ...
    nasforge registry push MODEL:VERSION [--alias ALIAS ...]
    nasforge registry export MODEL[:VERSION|:ALIAS] --format onnx|torchscript [-o FILE]

Every command takes ``--registry DIR`` (default ``$NASFORGE_REGISTRY`` or ``./registry``).
Handlers import torch and W&B inside, so `nasforge --help` stays fast.
"""
from __future__ import annotations

import argparse
import dataclasses
import json

from nasforge.platform.cli.common import add_alias, add_json, add_sweep_ref


def _add_registry_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--registry", default=None, metavar="DIR",
                   help="registry folder (default: $NASFORGE_REGISTRY or ./registry)")


REF_HELP = {"help": "a registered model: MODEL (its latest version), MODEL:VERSION (e.g. v3) or MODEL:ALIAS"}
ADAPT_HELP = {  # the fields of registry.adaptive.AdaptiveOptions
    "kind": "the decider: policy (BlockDrop, REINFORCE) or gates (ConvNet-AIG, Gumbel-softmax)",
    "cost_weight": "lambda, the price of the FLOPs used",
    "wrong_penalty": "gamma: BlockDrop's reward for a wrong prediction is -gamma",
    "decide_epochs": "epochs training the decider on the frozen backbone",
    "finetune_epochs": "epochs fine-tuning the backbone under fixed decisions",
    "lr": "the decider's Adam learning rate",
    "finetune_lr": "the backbone's SGD learning rate",
    "alpha": "BlockDrop's exploration bound on keep probabilities",
    "curriculum": "fraction of the decide phase over which the decided blocks grow from 1 to all",
    "policy_width": "channels of the policy network",
    "downsample": "the policy network's input downsampling factor",
    "gate_hidden": "hidden units of each gate",
    "tau": "Gumbel-softmax temperature",
    "seed": "random seed",
}
PROMOTE_HELP = "package a sweep's trial as a new version of a named model"


def configure_promote(p: argparse.ArgumentParser) -> None:
    """``sweep promote NAME [--trial N | --best] [--model MODEL] [--alias ALIAS ...]``."""
    p.description = ("Package a trial (default: the best) as the next version of a model in the registry: "
                     "weights, genotype, config, metrics, checksums.")
    add_sweep_ref(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, default=None, metavar="N", help="promote trial number N")
    which.add_argument("--best", action="store_true", help="promote the best COMPLETE trial (the default)")
    p.add_argument("--model", default=None, help="model name in the registry (default: the sweep name)")
    p.add_argument("--alias", action="append", default=[], metavar="ALIAS",
                   help="point ALIAS (best, production, ...) at the new version; repeatable")
    _add_registry_opt(p)
    add_json(p)
    p.set_defaults(func=_promote)


def register(subparsers) -> None:
    add_alias(subparsers, "promote", configure_promote, PROMOTE_HELP)

    # -- registry group -------------------------------------------------------------------
    g = subparsers.add_parser("registry", help="list, show, load-check, export and push registered models",
                              description="The model registry: named models, numbered versions, aliases.")
    g.set_defaults(print_group_help=g.print_help)
    sub = g.add_subparsers(dest="registry_command", metavar="SUBCOMMAND")

    s = sub.add_parser("list", help="models, their versions and aliases")
    _add_registry_opt(s)
    add_json(s)
    s.set_defaults(func=_list)

    s = sub.add_parser("show", help="one version: metrics, source trial, files and checksums")
    s.add_argument("ref", metavar="MODEL[:VERSION|:ALIAS]", **REF_HELP)
    s.add_argument("--json", action="store_true", help="print model.json and the manifest as JSON")
    _add_registry_opt(s)
    s.set_defaults(func=_show)

    s = sub.add_parser("alias", help="point aliases at a version (atomically)")
    s.add_argument("ref", metavar="MODEL:VERSION", help="a registered version, e.g. quickstart:v2")
    s.add_argument("aliases", nargs="+", metavar="ALIAS", help="the aliases to point at it (best, production, ...)")
    _add_registry_opt(s)
    s.set_defaults(func=_alias)

    s = sub.add_parser("load", help="check a version's files and rebuild its network (what Python's load() does)")
    s.add_argument("ref", metavar="MODEL[:VERSION|:ALIAS]", **REF_HELP)
    _add_registry_opt(s)
    s.set_defaults(func=_load)

    s = sub.add_parser("evaluate", help="validate a version on its sweep's validation data; compare with the record")
    s.add_argument("ref", metavar="MODEL[:VERSION|:ALIAS]", **REF_HELP)
    s.add_argument("--data-path", default=None, help="the data set's folder or zip, if not the recorded one")
    _add_registry_opt(s)
    s.set_defaults(func=_evaluate)

    _add_adapt_parser(sub)

    s = sub.add_parser("push", help="log a version as a W&B artifact and link it into the W&B Registry")
    s.add_argument("ref", metavar="MODEL:VERSION", help="a registered version, e.g. quickstart:v2")
    s.add_argument("--alias", action="append", default=None, metavar="ALIAS",
                   help="W&B aliases (default: the local aliases that point at this version)")
    _add_registry_opt(s)
    s.set_defaults(func=_push)

    s = sub.add_parser("export", help="export a version to ONNX or TorchScript (checked after writing)")
    s.add_argument("ref", metavar="MODEL[:VERSION|:ALIAS]", **REF_HELP)
    s.add_argument("--format", required=True, choices=("onnx", "torchscript"), help="the file format to export to")
    s.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="output file (default: MODEL-VERSION.onnx or .pt)")
    _add_registry_opt(s)
    s.set_defaults(func=_export)


def _fmt_metrics(metrics: dict) -> str:
    """Validation and cost metrics (training ones are noise for choosing a model)."""
    shown = {k: v for k, v in metrics.items() if not k.startswith("train/")}
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in sorted(shown.items()))


def _promote(args) -> int:
    from nasforge.platform.registry import promote

    res = promote(args.name, trial=args.trial, best=args.best, model=args.model, aliases=args.alias,
                  root=args.root, storage=args.storage, registry=args.registry)
    m = res.meta
    if args.json:
        print(json.dumps({"ref": res.version.ref, "path": str(res.version.path), "existing": bool(res.existing),
                          "aliases": list(res.aliases), "trial": m["trial"]["number"], "metrics": m["metrics"]},
                         default=str))
        return 0
    if res.existing:
        print(f"trial {m['trial']['number']} of sweep {m['sweep']['name']!r} is already {res.version.ref}; "
              "no new version" + (f" (aliases: {', '.join(res.aliases)})" if res.aliases else ""))
        return 0
    print(f"promoted trial {m['trial']['number']} of sweep {m['sweep']['name']!r} as {res.version.ref}"
          + (f" (aliases: {', '.join(res.aliases)})" if res.aliases else ""))
    print(f"  metrics: {_fmt_metrics(m['metrics'])}")
    print(f"  files:   {res.version.path}")
    if res.wandb_message:
        print(f"  {res.wandb_message}")
    return 0


def _list(args) -> int:
    from nasforge.platform.registry import Registry

    reg = Registry(args.registry)
    models = reg.models()
    if args.json:
        out = {}
        for model in models:
            aliases = reg.aliases(model)
            out[model] = []
            for v in reg.versions(model):
                meta = v.meta()
                out[model].append({"version": v.version, "ref": v.ref, "created": meta["created"],
                                   "sweep": meta["sweep"]["name"], "trial": meta["trial"]["number"],
                                   "metrics": meta["metrics"],
                                   "aliases": [a for a, tv in aliases.items() if tv == v.version]})
        print(json.dumps({"registry": str(reg.root), "models": out}, indent=2, default=str))
        return 0
    if not models:
        print(f"registry {reg.root} is empty (see `nasforge sweep promote`)")
        return 0
    print(f"registry {reg.root}")
    for model in models:
        versions = reg.versions(model)
        aliases = reg.aliases(model)
        print(f"{model}  ({len(versions)} version{'s' if len(versions) != 1 else ''})")
        for v in versions:
            meta = v.meta()
            tags = [a for a, tv in aliases.items() if tv == v.version]
            if v is versions[-1]:
                tags.append("latest")
            first = (meta.get("objectives") or [{}])[0].get("metric")
            score = meta["metrics"].get(first) if first else None
            print(f"  {v.version:<5} {meta['created']}  sweep {meta['sweep']['name']} trial {meta['trial']['number']}"
                  + (f"  {first}={score:.4g}" if isinstance(score, (int, float)) else "")
                  + f"  params={meta.get('num_params', '?')}"
                  + (f"  [{', '.join(tags)}]" if tags else ""))
    return 0


def _show(args) -> int:
    from nasforge.platform.registry import Registry
    from nasforge.platform.registry.versions import IntegrityError

    reg = Registry(args.registry)
    v = reg.resolve(args.ref)
    meta, manifest = v.meta(), v.manifest()
    aliases = [a for a, tv in reg.aliases(v.model).items() if tv == v.version]
    try:
        v.verify()
        integrity = "ok"
    except IntegrityError as e:
        integrity = f"FAILED: {e}"
    code = 0 if integrity == "ok" else 1  # a tampered version is flagged, and scripts see it
    if args.json:
        print(json.dumps({"ref": v.ref, "path": v.path, "aliases": aliases, "model": meta, "integrity": integrity,
                          "manifest": manifest, "wandb": v.wandb_state()}, indent=2, default=str))
        return code
    print(f"{v.ref}" + (f"  (aliases: {', '.join(aliases)})" if aliases else ""))
    print(f"  created:   {meta['created']}")
    print(f"  from:      sweep {meta['sweep']['name']!r} trial {meta['trial']['number']} ({meta['sweep']['run_dir']})")
    print(f"  task:      {meta['task']['name']} on {meta['data']['name']}, input {tuple(meta['input_shape'])}, "
          f"{meta['num_classes']} classes, {meta['num_params']} parameters")
    print(f"  metrics:   {_fmt_metrics(meta['metrics'])}")
    print(f"  params:    {json.dumps(meta['trial']['params'], default=str)}")
    w = v.wandb_state()
    print("  W&B:       " + (f"linked to {w.get('target')} ({w.get('artifact')})" if w.get("linked")
                               else f"not linked ({w.get('reason', 'never pushed')})"))
    print(f"  files:     {v.path}")
    for name, rec in manifest["files"].items():
        print(f"    {name:<20} {rec['bytes']:>10} B  sha256 {rec['sha256']}")
    print(f"  integrity: {integrity}")
    return code


def _alias(args) -> int:
    from nasforge.platform.registry import Registry

    reg = Registry(args.registry)
    v = reg.resolve(args.ref)
    for a in args.aliases:
        reg.set_alias(v.model, a, v.version)
    print(f"{', '.join(args.aliases)} -> {v.ref}")
    return 0


def _load(args) -> int:
    import torch

    from nasforge.platform.registry import load_version

    net, v = load_version(args.ref, args.registry)
    meta = v.meta()
    x = torch.zeros(1, *meta["input_shape"])  # (1, C, H, W)
    with torch.no_grad():
        out = net(x)
    n_files = len(v.manifest()["files"])
    print(f"{v.ref}: {n_files} files match their sha256; rebuilt {type(net).__name__} "
          f"({meta['num_params']} parameters, eval mode) from its genotype")
    print(f"  input (B, {', '.join(map(str, meta['input_shape']))}) -> output {tuple(out.shape[1:])} per example; "
          f"preprocessing {json.dumps(meta['preprocessing'])}")
    print(f"  in Python: from nasforge.platform.registry import load; model = load({v.ref!r})")
    return 0


def _evaluate(args) -> int:
    from nasforge.platform.registry import Registry, evaluate

    v = Registry(args.registry).resolve(args.ref)
    recorded = v.meta()["metrics"]
    measured = evaluate(v.ref, args.registry, data_path=args.data_path)
    print(f"{v.ref} on its sweep's validation data:")
    for k in sorted(measured):
        rec = recorded.get(k)
        note = f"   recorded {rec:.4f}" if isinstance(rec, (int, float)) else ""
        print(f"  {k:<12} measured {measured[k]:.4f}" + note)
    return 0


def _push(args) -> int:
    from nasforge.platform.registry import Registry
    from nasforge.platform.registry.wandb_link import push_version

    reg = Registry(args.registry)
    v = reg.resolve(args.ref)
    aliases = args.alias if args.alias is not None else [a for a, tv in reg.aliases(v.model).items() if tv == v.version]
    state = push_version(v, aliases)
    print(f"linked {v.ref} into {state['target']} as {state['artifact']} (aliases: {', '.join(aliases) or 'none'})")
    return 0


def _export(args) -> int:
    from nasforge.platform.registry.export import export

    res = export(args.ref, args.format, args.output, args.registry)
    print(f"wrote {res['path']} ({res['format']}); checked with {res['checked_with']}: "
          f"max |difference| from eager PyTorch {res['max_abs_diff']:.2e}")
    if res.get("exported"):
        print(res["exported"])
    return 0


def _add_adapt_parser(sub) -> None:
    from nasforge.platform.registry.adaptive import AdaptiveOptions

    s = sub.add_parser("adapt", help="train per-input block skipping (BlockDrop / ConvNet-AIG) on a version; "
                                     "register it as the next version",
                       description="Wrap a registered residual model in a decider that skips blocks per input, "
                                   "train it on the version's own data, measure accuracy and mean FLOPs per "
                                   "image, and register the result as the model's next version.")
    s.add_argument("ref", metavar="MODEL[:VERSION|:ALIAS]", **REF_HELP)
    defaults = AdaptiveOptions()
    for f in dataclasses.fields(AdaptiveOptions):
        if f.name in ("decider", "limit_train_batches"):
            continue
        kw = {"choices": ("policy", "gates")} if f.name == "kind" else {}
        s.add_argument("--" + f.name.replace("_", "-"), type=type(getattr(defaults, f.name)),
                       default=getattr(defaults, f.name), help=f"{ADAPT_HELP[f.name]} (default %(default)s)", **kw)
    s.add_argument("--model", default=None, help="register under this model name (default: the same model)")
    s.add_argument("--alias", action="append", default=[], metavar="ALIAS",
                   help="point ALIAS at the new version; repeatable")
    s.add_argument("--data-path", default=None, help="the data set's folder or zip, if not the recorded one")
    _add_registry_opt(s)
    s.set_defaults(func=_adapt)


def _adapt(args: argparse.Namespace) -> int:
    from nasforge.platform.registry.adaptive import AdaptiveOptions, promote_adaptive

    names = {f.name for f in dataclasses.fields(AdaptiveOptions)}
    o = AdaptiveOptions(**{k: v for k, v in vars(args).items() if k in names})
    v = promote_adaptive(args.ref, o, model=args.model, aliases=args.alias, registry=args.registry,
                         data_path=args.data_path)
    m = v.meta()["metrics"]
    print(f"adaptive {o.kind} version of {v.meta()['adaptive']['base']} registered as {v.ref}: "
          f"val/acc={m['val/acc']:.4f}, mean FLOPs per image {m['cost/flops_mean'] / 1e6:.2f} M "
          f"(static {m['cost/flops_static'] / 1e6:.2f} M), blocks run {m['blocks_mean']:.0%}")
    return 0

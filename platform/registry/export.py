"""Export a registered model for deployment: ONNX or TorchScript, checked after writing.

* ``onnx``: ``torch.onnx.export`` (the dynamo exporter, which needs ``onnxscript``) with a
  dynamic batch axis; the file is checked with ``onnx.checker.check_model`` and its outputs are
  compared with eager PyTorch on a real-shaped input, run by onnxruntime when it is installed
  and otherwise by ONNX's own reference evaluator (``onnx.reference``, pure Python).
* ``torchscript``: ``torch.jit.trace``; the saved file is loaded back and its outputs compared
  with eager PyTorch.

A task may say that only part of its network exports (``export_module``): a detector exports its
normalisation, backbone, FPN and head, not the box decoding and NMS; the result's ``exported``
says so. The input is what the data module feeds the network: ``(B, C, H, W)`` float, scaled to
[0, 1] and normalised with the ``preprocessing`` recorded in the version's model.json.
"""
from __future__ import annotations

import importlib
import os
import warnings

from nasforge.platform.engine.storage import check_writable_folder
from nasforge.platform.errors import NasforgeError, UsageError

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
# the packages a format needs beyond the base install (the `export` extra)
EXTRA = {"onnx": ("onnx", "onnxscript")}


def _compare(ref, out, what: str) -> float:
    import numpy as np

    err = float(np.max(np.abs(np.asarray(ref) - np.asarray(out))))
    if not np.allclose(ref, out, atol=1e-4, rtol=1e-3):
        raise NasforgeError(f"export check failed: {what} differs from eager PyTorch by up to {err:.3g}")
    return err


def export(ref: str, fmt: str, out: str | None = None, registry=None) -> dict:
    """Write ``ref`` as ``fmt`` to ``out`` (default ``<model>-<version><suffix>``); returns
    {"path", "format", "checked_with", "max_abs_diff"}."""
    import torch

    from nasforge.platform.registry import load_version

    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    missing = [m for m in EXTRA.get(fmt, ()) if not _importable(m)]
    if missing:
        raise UsageError(f"--format {fmt} needs {', '.join(missing)}: pip install 'nasforge[export]'")
    net, v = load_version(ref, registry)
    meta = v.meta()
    net, note = _exportable_part(net, meta)
    out = out or f"{v.model}-{v.version}{SUFFIX[fmt]}"
    if os.path.isdir(out):
        raise UsageError(f"-o: {out!r} is a folder; give a file name")
    check_writable_folder(os.path.dirname(os.path.abspath(out)), "-o")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, *meta["input_shape"], generator=g)  # (B, C, H, W), already normalised scale
    with torch.no_grad():
        eager = _arrays(net(x))
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notice
            traced = torch.jit.trace(net, x)
            traced.save(out)
            loaded = torch.jit.load(out)
        with torch.no_grad():
            got = _arrays(loaded(x))
        return {"path": os.path.abspath(out), "format": fmt, "checked_with": "torch.jit.load",
                "max_abs_diff": _compare_all(eager, got, "the TorchScript module"), **note}

    import onnx

    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), out, input_names=["input"],
                          output_names=list(getattr(net, "output_names", ["logits"])),
                          dynamic_shapes={_arg_name(net): {0: batch}},
                          dynamo=True, external_data=False, verbose=False)
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    xin = x.numpy()
    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
        got = sess.run(None, {sess.get_inputs()[0].name: xin})
        checker = "onnx.checker + onnxruntime"
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        got = ReferenceEvaluator(model).run(None, {model.graph.input[0].name: xin})
        checker = "onnx.checker + onnx.reference"
    return {"path": os.path.abspath(out), "format": fmt, "checked_with": checker,
            "max_abs_diff": _compare_all(eager, got, "the ONNX model"), **note}


def _exportable_part(net, meta: dict) -> tuple:
    """(the module to export, {"exported": note} or {}): a task with ``export_module`` (detection)
    says which part of its network exports and what stays in Python."""
    from nasforge.platform.registry.promote import task_class

    part = getattr(task_class(meta), "export_module", None)
    if part is None:
        return net, {}
    module, note = part(net)
    return module, {"exported": note}


def _arrays(out) -> list:
    """A network's output(s) as a list of numpy arrays."""
    return [t.numpy() for t in (out if isinstance(out, (tuple, list)) else [out])]


def _compare_all(ref: list, got: list, what: str) -> float:
    if len(ref) != len(got):
        raise NasforgeError(f"export check failed: {what} gives {len(got)} outputs, "
                            f"eager PyTorch {len(ref)}")
    return max(_compare(r, o, what) for r, o in zip(ref, got))


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
        return True
    except ImportError:
        return False


def _arg_name(net) -> str | None:
    import inspect

    params = list(inspect.signature(net.forward).parameters)
    return params[0] if params else None

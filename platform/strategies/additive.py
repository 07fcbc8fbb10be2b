"""An additive model of a space's decisions: ridge regression on one-hot decision values.

What our strategies use it for (they see samples and scores only, never networks):

* `local_search` orders a centre's neighbours by the model's prediction (fitted to the quantile
  of each ranked trial's score: scale-free, robust to broken samples' scores; by default each
  trial weighted by its closeness to the centre, a locally weighted fit);
* every strategy of ours passes over samples predicted to break a constraint
  (`feasibility_predicate`: one model per constraint key, fitted to the values trials reported
  with ``Trial.set_constraint``). Parameter counts, FLOPs and latency of cell-based networks
  are close to additive in the chosen operations, so a few dozen trials predict them well; a
  sample predicted feasible but infeasible is still just an infeasible trial.

Numpy only; a fit over a thousand trials of a 30-value space takes well under a millisecond.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

MIN_CONSTRAINED = 5  # trials with reported constraints before the feasibility model is trusted


def hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def fit_additive(samples: Sequence[Mapping[str, Any]], targets: Sequence[float],
                 ridge: float = 1.0, weights: Sequence[float] | None = None) -> dict[tuple, float]:
    """{(label, value): weight, (): intercept} of a ridge fit of ``targets`` on one-hot features
    (``weights``: one per sample, a weighted least-squares fit; default all 1); a value never
    seen weighs 0."""
    import numpy as np

    columns: dict[tuple, int] = {}
    rows = [[columns.setdefault((k, hashable(v)), len(columns)) for k, v in s.items()] for s in samples]
    X = np.zeros((len(rows), len(columns)))  # (n, p)
    for i, cols in enumerate(rows):
        X[i, cols] = 1.0
    w, mean = fit_ridge(X, targets, ridge, weights)
    return {**{c: float(w[j]) for c, j in columns.items()}, (): mean}


def fit_ridge(X, targets: Sequence[float], ridge: float, weights: Sequence[float] | None = None):
    """``(w, mean)``: the (weighted) ridge fit of ``targets - mean`` on the columns of ``X``
    (n, p); a column that is all 0 gets weight 0. Predict with ``mean + X_new @ w``."""
    import numpy as np

    y = np.asarray(targets, dtype=float)
    sw = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)  # (n,)
    mean = float(sw @ y / sw.sum())
    w = np.linalg.solve(X.T @ (X * sw[:, None]) + ridge * np.eye(X.shape[1]), X.T @ (sw * (y - mean)))
    return w, mean


def predict(weights: Mapping[tuple, float], sample: Mapping[str, Any]) -> float:
    return weights.get((), 0.0) + sum(weights.get((k, hashable(v)), 0.0) for k, v in sample.items())


def feasibility_predicate(history) -> Callable[[Mapping[str, Any]], bool]:
    """``sample -> bool`` from the records' reported constraints (see the module docstring)."""
    done = [r for r in history if r.sample is not None and r.constraints]
    if len(done) < MIN_CONSTRAINED:
        return lambda sample: True
    keys = sorted({k for r in done for k in r.constraints})
    models = []
    for key in keys:
        rows = [r for r in done if key in r.constraints]
        if len(rows) >= MIN_CONSTRAINED:
            models.append(fit_additive([r.sample for r in rows], [r.constraints[key] for r in rows],
                                       ridge=1e-3))
    return lambda sample: all(predict(m, sample) <= 0.0 for m in models)

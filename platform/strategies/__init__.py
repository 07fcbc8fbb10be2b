"""Strategies by name: every search strategy is an Optuna sampler (contract 2 of DESIGN.md).

``create_sampler(strategy_cfg, space, seed, directions)`` returns an
``optuna.samplers.BaseSampler``:

* Optuna's own: ``tpe`` (Bergstra et al. 2011), ``random``, ``cmaes`` (Hansen; numeric spaces
  only), ``nsga2`` (Deb et al. 2002; multi-objective), ``gp`` (Bayesian optimization with a
  Gaussian process), ``qmc`` (Sobol/Halton), ``grid`` (every combination of the space's
  decision grid);
* ours: ``controller`` (the RL controller of Zoph & Le 2017 / ENAS, `controller.py`),
  ``evolution`` (regularized evolution, Real et al. 2019, `evolution.py`) and ``local_search``
  (White et al. 2021, `local_search.py`) and ``morphism`` (Auto-Keras's network morphism with a GP
  on edit distance, Jin et al. 2019, `morphism.py`; morphable spaces only).

``strategy.options`` are the sampler's keyword arguments (for Optuna's samplers: the
constructor's, minus ``seed`` which comes from the sweep); an unknown one raises ConfigError
naming it and the valid ones. Strategies see samples and scores only.
"""
from __future__ import annotations

import inspect
from typing import Any, Mapping, Sequence

from nasforge.search_spaces import Categorical, Space

from nasforge.platform.errors import ConfigError

OPTUNA_SAMPLERS = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "cmaes": "CmaEsSampler",
    "nsga2": "NSGAIISampler",
    "gp": "GPSampler",
    "qmc": "QMCSampler",
    "grid": "GridSampler",
}
OURS = ("controller", "evolution", "local_search", "morphism")
STRATEGIES = tuple(OPTUNA_SAMPLERS) + OURS  # the one list of strategy names (config, --help, docs)
# Optuna samplers that draw from a running random generator: seeded alike, two workers (or a
# resumed run) would redraw the samples of trials 0, 1, ... QMC must keep one seed (its
# scramble); our own strategies derive everything from (seed, trial number) already.
RESEEDED = ("random", "tpe", "cmaes", "nsga2", "gp")
# Options a sweep file cannot set: they hold Python objects, or come from the sweep itself.
_NOT_OPTIONS = {"self", "seed", "search_space", "constraints_func", "gamma", "weights", "mutation", "crossover",
                "independent_sampler", "elite_population_selection_strategy", "child_generation_strategy",
                "after_trial_strategy", "source_trials", "x0"}


def _name_and_options(strategy_cfg: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(strategy_cfg, str):
        return strategy_cfg, {}
    if isinstance(strategy_cfg, Mapping):
        return str(strategy_cfg.get("name", "tpe")), dict(strategy_cfg.get("options") or {})
    return strategy_cfg.name, dict(strategy_cfg.options or {})


def _optuna_kwargs(cls: type, name: str, options: dict[str, Any]) -> dict[str, Any]:
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in _NOT_OPTIONS]
    for key in options:
        if key not in valid:
            raise ConfigError(f"strategy.options: unknown option {key!r} for {name}; valid options: "
                              f"{', '.join(valid) or '(none)'}")
    return options


def create_sampler(strategy_cfg: Any, space: Space, seed: int = 0,
                   directions: Sequence[str] = ("maximize",)):
    """The sampler a sweep file's ``strategy:`` names (a StrategyConfig, a mapping, or a name).

    Constraints need no wiring here: trials report them with ``Trial.set_constraint`` (Optuna
    5), which the samplers that honour feasibility (tpe, nsga2, gp and all of ours) read from
    storage."""
    import optuna

    name, options = _name_and_options(strategy_cfg)
    directions = tuple(directions)
    if name not in STRATEGIES:
        raise ConfigError(f"strategy.name: unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    if name == "controller":
        from nasforge.platform.strategies.controller import ControllerSampler

        return ControllerSampler(space, seed=seed, directions=directions, **options)
    if name == "evolution":
        from nasforge.platform.strategies.evolution import EvolutionSampler

        return EvolutionSampler(space, seed=seed, directions=directions, **options)
    if name == "local_search":
        from nasforge.platform.strategies.local_search import LocalSearchSampler

        return LocalSearchSampler(space, seed=seed, directions=directions, **options)
    if name == "morphism":
        from nasforge.platform.strategies.morphism import MorphismSampler

        return MorphismSampler(space, seed=seed, directions=directions, **options)

    cls = getattr(optuna.samplers, OPTUNA_SAMPLERS[name])
    kwargs = _optuna_kwargs(cls, name, options)
    if name == "cmaes":
        categorical = [d.label for d in space.dims if isinstance(d, Categorical)]
        if categorical:
            raise ConfigError(f"strategy.name: cmaes searches numeric spaces only; {space.name!r} has categorical "
                              f"dimensions ({', '.join(categorical[:3])}{', ...' if len(categorical) > 3 else ''}); "
                              "use tpe, gp, evolution or controller")
        if len(directions) > 1:
            raise ConfigError("strategy.name: cmaes is single-objective; use nsga2 for several objectives")
    if name == "grid":
        grid = {d.label: list(d.choices) for d in space.decisions()}
        if any(d.when for d in space.dims):
            raise ConfigError("strategy.name: grid cannot search a space with conditional dimensions")
        return cls(grid, seed=seed, **kwargs)
    try:
        return cls(seed=seed, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"strategy.options: {name}: {e}") from None

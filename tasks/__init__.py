"""nasforge.tasks: LightningModules and LightningDataModules, one task per file.

A task receives its network (``network=``) and never imports Optuna or the platform; the only
contract with the search is the names of the metrics it logs (``val/acc``, ``val/miou``, ...).
Data modules read real data in ``prepare_data``/``setup``, never in ``__init__``.
"""

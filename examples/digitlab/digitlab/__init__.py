"""digitlab: a user's own Lightning project that nasforge searches without knowing it.

Nothing here imports nasforge except `space.py` (a search space is nasforge's concept): the
LightningModule takes the network to train as its ``backbone`` argument, the data module says
what the network sees (``input_shape``, ``num_classes``), and `sweep.yaml` names both by class path.
"""

"""Cost of a built network (params, FLOPs, latency) and the Lightning callback that logs it."""
from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

from nasforge.platform.engine.cost import COST_KEYS, CostCallback, measure_cost
from nasforge.search_spaces import create_space

torch.set_num_threads(1)


def test_params_are_the_parameter_count_of_a_built_network():
    space = create_space("attention", layers=[1, 1, 1, 1], width=8)
    sample = {"stage1/attn": "se", "stage1/reduction": 4, "stage2/attn": "nl", "stage2/reduction": 8,
              "stage3/attn": "eca", "stage4/attn": "cbam", "stage4/reduction": 16}
    net = space.build(sample, (3, 32, 32), 10)
    cost = measure_cost(net, (3, 32, 32), latency_runs=2, warmup_runs=1)
    assert set(cost) == set(COST_KEYS)
    assert cost["cost/params"] == sum(p.numel() for p in net.parameters())


def test_flops_of_linear_and_conv_layers_are_the_analytic_counts():
    # nn.Linear(64, 10): 64 x 10 multiply-adds = 2 * 640 FLOPs per sample, whatever the batch
    for batch in (1, 4):
        assert measure_cost(nn.Linear(64, 10), (64,), batch_size=batch, latency_runs=1)["cost/flops"] == 2 * 64 * 10
    # 3x3 conv, 3 -> 8 channels, 16x16 output: 2 * Cout * H * W * Cin * k * k
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert measure_cost(conv, (3, 16, 16), latency_runs=1)["cost/flops"] == 2 * 8 * 16 * 16 * 3 * 9
    # strided, grouped: 8 -> 16 channels in 2 groups, 8x8 output
    grouped = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2, bias=False)
    assert measure_cost(grouped, (8, 16, 16), latency_runs=1)["cost/flops"] == 2 * 16 * 8 * 8 * (8 // 2) * 9


def test_latency_is_positive_and_the_model_comes_back_unchanged():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 5))
    model.train()
    model[1].eval()  # a frozen BN inside a training model keeps its own mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cost = measure_cost(model, (3, 8, 8), batch_size=2, latency_runs=5, warmup_runs=1)
    assert cost["cost/latency_ms"] > 0
    assert model.training and not model[1].training and model[0].training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics untouched
    assert all(p.grad is None for p in model.parameters())


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="batch_size"):
        measure_cost(nn.Linear(2, 2), (2,), batch_size=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_measures_on_the_gpu_and_returns_the_model_to_its_device():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    cost = measure_cost(model, (3, 32, 32), device="cuda", latency_runs=5)
    assert cost["cost/latency_ms"] > 0
    assert cost["cost/flops"] == 2 * 16 * 32 * 32 * 3 * 9 + 2 * 16 * 10
    assert next(model.parameters()).device.type == "cpu"


def test_callback_measures_at_fit_start_and_logs_to_the_loggers(tmp_path):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from nasforge.tasks.classification import ClassificationTask
    from nasforge.tasks.digits import DigitsDataModule

    dm = DigitsDataModule(subset=64, val_subset=32, batch_size=16)
    space = create_space("reallocation", width=8)
    sample = {"realloc/depths": "1-1-2-4", **{f"realloc/stage{i}/dilation": 1 for i in range(1, 5)}}
    net = space.build(sample, dm.input_shape, dm.num_classes)
    module = ClassificationTask(network=net, num_classes=dm.num_classes)
    callback = CostCallback()  # input shape from the data module
    logger = CSVLogger(str(tmp_path), name="cost", version=0)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, accelerator="cpu",
                        logger=logger, callbacks=[callback], enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    assert set(callback.costs) == set(COST_KEYS)
    assert callback.costs["cost/params"] == sum(p.numel() for p in net.parameters())
    assert callback.costs["cost/flops"] > 0 and callback.costs["cost/latency_ms"] > 0
    assert callback.device == "cpu"
    with open(tmp_path / "cost" / "version_0" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = [r for r in rows if r.get("cost/params")]
    assert logged and float(logged[0]["cost/params"]) == callback.costs["cost/params"]
    assert logged[0]["step"] == "0"

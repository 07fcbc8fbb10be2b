"""Semantic segmentation: the mask pipeline, the ignore index, the metrics, the encdec space.

Real data only (CamVid and ISBI-2012 from ../shared/data; tests skip with the reason when it is
absent). What a user relies on: augmentation never changes or invents a label and moves image and
mask together pixel for pixel; void pixels never change the loss or the metrics; a CamVid trial
reports mIoU and per-class IoU that match a by-hand count over the non-void pixels; the encdec
space builds networks that answer any input size; a short ISBI fit learns (marked slow).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import lightning as L  # noqa: E402

from nasforge.search_spaces import SampleValidationError, create_space  # noqa: E402
from nasforge.tasks.camvid import CLASSES as CAMVID_CLASSES  # noqa: E402
from nasforge.tasks.camvid import CamVidDataModule  # noqa: E402
from nasforge.tasks.isbi import ISBIDataModule  # noqa: E402
from nasforge.tasks.seg_transforms import JointTransform  # noqa: E402
from nasforge.tasks.segmentation import SegmentationTask  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core machine, 2 threads are 10-30x slower for these
    small convolutions (OpenMP threads wait on each other); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_sample(encoder: str = "unet", gate: str = "ag", attn: str = "se") -> dict:
    s = {"encdec/encoder": encoder, "encdec/decoder/width": 8}
    if encoder == "unet":
        s["encdec/unet/width"] = 8
    for j in range(1, 5):
        s[f"encdec/stage{j}/gate"] = gate
        s[f"encdec/stage{j}/attn"] = attn
    return s


@pytest.fixture(scope="module")
def camvid(camvid_zip):
    dm = CamVidDataModule(path=str(camvid_zip), batch_size=2, crop_size=(96, 128), subset=4, val_subset=3)
    dm.setup("fit")
    return dm


def _trainer(**kw) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, **kw)


# ----------------------------------------------------------------------------- mask pipeline
def _coded(mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """An image whose pixels name their own source: channel 0 the label, 1 the row, 2 the column."""
    H, W = mask.shape
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    image = np.stack([mask, rows, cols]).astype(np.uint8)  # (3, H, W); H, W < 256
    return torch.from_numpy(image), torch.from_numpy(mask.copy())


def test_crop_flip_rotate_move_image_and_mask_together_pixel_exactly(camvid):
    mask = camvid.train_set.masks[0].numpy()  # real CamVid labels, void = 255
    image, m = _coded(mask)
    tf = JointTransform(crop_size=(200, 200), hflip=0.5, vflip=0.5, rot90=0.75, ignore_index=255)
    g = torch.Generator().manual_seed(0)
    seen_pad = False
    for _ in range(12):
        out_img, out_mask = tf(image, m, generator=g)
        assert out_img.shape == (3, 200, 200) and out_mask.shape == (200, 200)
        assert out_mask.dtype == m.dtype
        padded = (out_img.sum(0) == 0) & (out_mask == 255)  # rows beyond 180 are padding
        seen_pad |= bool(padded.any())
        r, c = out_img[1].long(), out_img[2].long()
        src = torch.from_numpy(mask)[r, c]
        real = ~padded | (r + c > 0)
        # every real output pixel carries exactly the label of the source pixel it came from
        assert torch.equal(out_mask[real], src[real])
        assert torch.equal(out_img[0][real], out_mask[real])
        assert set(out_mask.unique().tolist()) <= set(np.unique(mask).tolist()) | {255}
    assert seen_pad, "a crop taller than the image must be padded with the ignore index"


def test_scaling_never_interpolates_labels(camvid):
    mask = camvid.train_set.masks[1]
    image = camvid.train_set.images[1]
    labels = set(mask.unique().tolist())
    g = torch.Generator().manual_seed(1)
    up = JointTransform(scale_range=(1.2, 1.6))
    for _ in range(3):  # upscaling keeps every label (nearest look-up copies each source pixel)
        out_img, out_mask = up(image, mask, generator=g)
        assert out_mask.shape[0] > mask.shape[0]
        assert out_img.shape[-2:] == out_mask.shape
        assert set(out_mask.unique().tolist()) == labels
    down = JointTransform(crop_size=96, scale_range=(0.5, 0.9), hflip=0.5)
    for _ in range(3):  # downscaling may lose a thin class but never invents a label
        _, out_mask = down(image, mask, generator=g)
        assert set(out_mask.unique().tolist()) <= labels | {255}


def test_training_batches_hold_only_true_labels(camvid):
    x, y = next(iter(camvid.train_dataloader()))
    assert x.shape == (2, 3, 96, 128) and x.dtype == torch.uint8
    assert set(y.unique().tolist()) <= set(range(11)) | {255}
    xb, yb = camvid.on_after_batch_transfer((x, y), 0)
    assert xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert torch.equal(yb, y.long())


# ----------------------------------------------------------------------------- data modules
def test_shapes_known_without_reading_data(tmp_path):
    missing = str(tmp_path / "nothing-here")
    cv = CamVidDataModule(path=missing)
    assert cv.input_shape == (3, 180, 240) and cv.num_classes == 11
    assert list(cv.class_names) == list(CAMVID_CLASSES)
    isbi = ISBIDataModule(path=missing, batch_size=4, augment=0.5, crop_size=64, repeats=2)
    assert isbi.input_shape == (1, 512, 512) and isbi.num_classes == 2
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        isbi.setup("fit")
    with pytest.raises(TypeError, match="crop"):
        ISBIDataModule(path=missing, crops=64)


def test_camvid_splits_as_given_and_void_is_ignore(camvid_zip):
    dm = CamVidDataModule(path=str(camvid_zip))
    splits = dm.arrays()
    assert {k: len(v[0]) for k, v in splits.items()} == {"train": 367, "val": 101, "test": 233}
    masks = splits["val"][1]
    assert set(np.unique(masks).tolist()) <= set(range(11)) | {255}
    assert (masks == 255).any() and not (masks == 11).any()


def test_isbi_seeded_split(isbi_zip):
    a = ISBIDataModule(path=str(isbi_zip), val_fraction=0.2, seed=3)
    b = ISBIDataModule(path=str(isbi_zip), val_fraction=0.2, seed=3)
    c = ISBIDataModule(path=str(isbi_zip), val_fraction=0.2, seed=4)
    tr, va = a.split_indices(30)
    assert len(va) == 6 and len(tr) == 24 and not set(tr) & set(va)
    assert [x.tolist() for x in b.split_indices(30)] == [tr.tolist(), va.tolist()]
    assert c.split_indices(30)[1].tolist() != va.tolist()
    a.setup("fit")
    assert set(a.val_set.masks.unique().tolist()) == {0, 1}  # membrane, cell



def test_local_folders_with_the_same_layout_load_like_the_zips(camvid_zip, isbi_zip, tmp_path):
    import zipfile

    with zipfile.ZipFile(isbi_zip) as z:
        z.extractall(tmp_path / "isbi", [f"train/{d}/{i}.png" for d in ("image", "label") for i in range(5)])
    folder = ISBIDataModule(path=str(tmp_path / "isbi")).arrays()["train"]
    zipped = ISBIDataModule(path=str(isbi_zip)).arrays()["train"]
    assert folder[0].shape == (5, 512, 512, 1)
    assert np.array_equal(folder[0], zipped[0][:5]) and np.array_equal(folder[1], zipped[1][:5])
    with zipfile.ZipFile(camvid_zip) as z:
        names = [n for n in z.namelist() if n.split("/")[0] in ("train", "val") and n.endswith(".png")][:2]
        names += [n for n in z.namelist() if n.startswith("val/")][:2]
        names += [n.replace("/", "annot/", 1) for n in names]
        z.extractall(tmp_path / "CamVid", names)
    splits = CamVidDataModule(path=str(tmp_path / "CamVid")).arrays()
    full = CamVidDataModule(path=str(camvid_zip)).arrays()
    assert len(splits["train"][0]) == 2 and len(splits["val"][0]) == 2
    assert np.array_equal(splits["train"][1], full["train"][1][:2])  # void mapped the same way

# ----------------------------------------------------------------------------- ignore index
def test_loss_ignores_void_pixels(camvid):
    y = camvid.val_set.masks[:2].long()  # (2, 180, 240), real void pixels
    void = y == 255
    assert void.any()
    net = torch.nn.Identity()
    for dice in (0.0, 1.0):
        task = SegmentationTask(net, 11, dice_weight=dice)
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(2, 11, 180, 240, generator=g)
        changed = logits.clone()
        changed[void[:, None].expand_as(changed)] = 50 * torch.randn(int(void.sum()) * 11, generator=g)
        assert torch.allclose(task.loss(logits, y), task.loss(changed, y))
        other = logits.clone()
        other[~void[:, None].expand_as(other)] += 3 * torch.randn(int((~void).sum()) * 11, generator=g)
        assert not torch.allclose(task.loss(logits, y), task.loss(other, y))
    all_void = torch.full_like(y, 255)
    assert task.loss(logits, all_void).item() == 0.0  # not NaN


def test_metric_never_counts_void(camvid):
    y = camvid.val_set.masks[:2].long()
    void = y == 255
    task = SegmentationTask(torch.nn.Identity(), 11)
    preds = torch.where(void, 0, y)  # perfect on every labelled pixel, "sky" on void
    task.val_metrics.update(preds, y)
    assert task.val_metrics.miou.compute().item() == pytest.approx(1.0)
    assert task.val_metrics.pixel_acc.compute().item() == pytest.approx(1.0)


def test_task_options_fail_loudly():
    net = torch.nn.Identity()
    with pytest.raises(TypeError, match="colour"):
        SegmentationTask(net, 11, colour="red")
    with pytest.raises(ValueError, match="adamw"):
        SegmentationTask(net, 11, optimizer="adam")
    with pytest.raises(ValueError, match="ignore_index"):
        SegmentationTask(net, 11, ignore_index=3)


# ----------------------------------------------------------------------------- a CamVid trial
def _by_hand(task, dm) -> tuple[float, dict[int, float]]:
    """IoU per class from a confusion matrix over non-void pixels, counted with numpy."""
    conf = np.zeros((11, 11), dtype=np.int64)
    task.eval()
    with torch.no_grad():
        for x, y in dm.val_dataloader():
            x, y = dm.on_after_batch_transfer((x, y), 0)
            p = task(x).argmax(1)
            keep = y != 255
            np.add.at(conf, (y[keep].numpy(), p[keep].numpy()), 1)
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    ious = {k: inter[k] / union[k] for k in range(11) if union[k] > 0}
    return float(np.mean(list(ious.values()))), ious


@pytest.mark.slow
def test_camvid_trial_reports_miou_and_per_class_iou_without_void(camvid, tmp_path):
    torch.manual_seed(0)
    net = create_space("encdec").build(tiny_sample(), camvid.input_shape, camvid.num_classes)
    task = SegmentationTask(net, camvid.num_classes, dice_weight=0.5, lr=3e-3, warmup_epochs=0.5)
    trainer = _trainer(max_epochs=1, limit_train_batches=2,
                       callbacks=SegmentationTask.extra_callbacks(str(tmp_path)))
    trainer.fit(task, datamodule=camvid)
    m = trainer.callback_metrics
    for key in ("train/loss", "val/loss", "val/miou", "val/pixel_acc"):
        assert key in m and math.isfinite(float(m[key])), key
    per_class = {k.split("/")[-1]: float(v) for k, v in m.items() if k.startswith("val/iou/")}
    assert per_class and set(per_class) <= set(CAMVID_CLASSES)  # no void, no "11", no "255"
    miou, ious = _by_hand(task, camvid)
    assert float(m["val/miou"]) == pytest.approx(miou, abs=1e-5)
    assert per_class == pytest.approx({CAMVID_CLASSES[k]: v for k, v in ious.items()}, abs=1e-5)
    overlays = sorted(p.name for p in (tmp_path / "overlays").iterdir())
    assert overlays == ["epoch000_0.png", "epoch000_1.png", "epoch000_2.png"]


# ----------------------------------------------------------------------------- the encdec space
@pytest.mark.parametrize("encoder", ["unet", "mobilenetv3_small_100", "resnet10t"])
def test_encdec_networks_answer_any_size(encoder):
    space = create_space("encdec")
    net = space.build(tiny_sample(encoder, gate="ag", attn="cbam"), (3, 64, 64), 5)
    out = net(torch.randn(1, 3, 75, 61))
    assert out.shape == (1, 5, 75, 61)


def test_encdec_space_rules(tmp_path):
    space = create_space("encdec", encoders=["unet", "resnet18"], attns=["none", "eca", "gc"])
    assert "encdec/unet/width" in space.labels()
    s = tiny_sample("resnet18", attn="eca")
    s.pop("encdec/unet/width", None)
    assert space.validate(s)["encdec/encoder"] == "resnet18"
    with pytest.raises(SampleValidationError, match="inactive"):
        space.validate({**s, "encdec/unet/width": 8})
    with pytest.raises(SampleValidationError, match="cbam"):
        space.validate({**s, "encdec/stage2/attn": "cbam"})
    cfg = space.config(s)
    assert [st.width for st in cfg.stages] == [64, 32, 16, 8] and all(st.gate for st in cfg.stages)
    with pytest.raises(ValueError, match="valid"):
        create_space("encdec", attns=["se", "ge"])
    bad = create_space("encdec", encoders=["resnet_does_not_exist"])
    with pytest.raises(SampleValidationError, match="unknown encoder"):
        bad.build({**tiny_sample("resnet_does_not_exist")}, (3, 32, 32), 2)
    files = space.draw(s, str(tmp_path / "arch"))
    assert sorted(p.rsplit(".", 1)[1] for p in files) == ["png", "svg"]


def test_attention_gate_scales_skip_by_coefficients_in_unit_interval():
    from nasforge.search_spaces.attention_gate import AttentionGate

    gate = AttentionGate(skip_channels=8, gate_channels=16)
    x, g = torch.randn(2, 8, 23, 31), torch.randn(2, 16, 12, 16)
    alpha = gate.coefficients(x, g)
    assert alpha.shape == (2, 1, 23, 31) and alpha.min() >= 0 and alpha.max() <= 1
    assert torch.allclose(gate(x, g), x * alpha)


def test_sweep_files_load():
    from nasforge.platform.engine.config import load_sweep

    repo = Path(__file__).resolve().parents[1]
    for name in ("isbi_unet", "camvid_attention"):
        cfg = load_sweep(repo / "sweeps" / f"{name}.yaml")
        assert cfg.task.name == "segmentation"
        assert [(o.metric, o.direction) for o in cfg.objectives][0] == ("val/miou", "maximize")


# ----------------------------------------------------------------------------- ISBI learns
@pytest.mark.slow
def test_short_isbi_fit_beats_the_all_cell_prediction(isbi_zip, tmp_path):
    L.seed_everything(0)
    dm = ISBIDataModule(path=str(isbi_zip), batch_size=4, crop_size=128, repeats=4, seed=0)
    net = create_space("encdec").build(tiny_sample(gate="ag", attn="none"), dm.input_shape, dm.num_classes)
    task = SegmentationTask(net, dm.num_classes, lr=3e-3, dice_weight=0.5, warmup_epochs=0.2, overlay_images=1)
    trainer = _trainer(max_epochs=3, callbacks=SegmentationTask.extra_callbacks(str(tmp_path)))
    trainer.fit(task, datamodule=dm)
    m = {k: float(v) for k, v in trainer.callback_metrics.items()}
    print({k: round(v, 4) for k, v in m.items()})
    assert set(k for k in m if k.startswith("val/iou/")) == {"val/iou/membrane", "val/iou/cell"}
    trivial_cell = float((dm.val_set.masks == 1).float().mean())  # "cell" everywhere: IoU = cell share
    assert m["val/iou/cell"] > trivial_cell + 0.03
    assert m["val/iou/membrane"] > 0.4  # the all-cell prediction scores 0 here
    assert (tmp_path / "overlays" / "epoch002_0.png").is_file()


def test_autodeeplab_path_stays_between_quarter_and_1_32(tmp_path):
    space = create_space("autodeeplab", layers=6, widths=[8])
    moves = ["up", "down", "down", "down", "down", "same"]  # tries 1/2 first, then below 1/32
    s = {"autodeeplab/width": 8}
    for i, mv in enumerate(moves, 1):
        s[f"autodeeplab/layer{i}/move"] = mv
        s[f"autodeeplab/layer{i}/op"] = "sep3"
    assert space.path(s) == [0, 1, 2, 3, 3, 3]  # 1/4, 1/8, 1/16, 1/32, then held at 1/32
    same = {**s, "autodeeplab/layer1/move": "same", "autodeeplab/layer5/move": "same"}
    assert space.key(same) == space.key(s)  # clamped moves are the same network
    assert space.key({**s, "autodeeplab/layer6/move": "up"}) != space.key(s)
    net = space.build(s, (3, 64, 64), 4)
    assert net(torch.randn(1, 3, 75, 61)).shape == (1, 4, 75, 61)
    assert len(space.draw(s, str(tmp_path / "path"))) == 2


# ----------------------------------------------------------------------------- the shipped sweep files run
@pytest.mark.slow
@pytest.mark.parametrize("name,zip_fixture", [("isbi_unet", "isbi_zip"), ("camvid_attention", "camvid_zip")])
def test_shipped_segmentation_sweep_file_runs_end_to_end(name, zip_fixture, run_root, request):
    """`nasforge sweep run sweeps/NAME.yaml` as a user runs it, cut to one trial of a few batches:
    the file's data (the shared zip, no path), space, task options and objective reach a trained,
    checkpointed trial that reports mIoU and the per-class IoU of its own classes."""
    from sweep_workers import journal_url, load, sweep_run

    request.getfixturevalue(zip_fixture)  # skips with a reason when the shared data is absent
    file = Path(__file__).resolve().parents[1] / "sweeps" / f"{name}.yaml"
    res = sweep_run(file, run_root, "--trials", "1", "--set", "trainer.max_epochs=1",
                    "--set", "trainer.limit_train_batches=3", "--set", "trainer.limit_val_batches=2",
                    "--set", "trainer.accelerator=cpu", "--set", "trainer.cpu_threads=1",
                    "--set", "task.data.num_workers=0", "--set", "tracking.mode=disabled", timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (trial,) = load(name, journal_url(run_root, name)).trials
    assert trial.state.name == "COMPLETE"
    m = trial.user_attrs["metrics"]
    assert trial.values[0] == pytest.approx(m["val/miou"]) and 0 <= m["val/miou"] <= 1
    classes = {"isbi_unet": {"membrane", "cell"}, "camvid_attention": set(CAMVID_CLASSES)}[name]
    assert {k.split("/")[-1] for k in m if k.startswith("val/iou/")} == classes
    assert m["cost/flops"] > 0 and Path(trial.user_attrs["checkpoint"]).is_file()
    assert "leaderboard" in res.stdout

"""Object detection: the CR-NAS sweep end to end, the mAP pipeline, COCO data and its errors,
and a detection model through the registry.

Real data only: Penn-Fudan from ../shared/data (tests skip with the reason when it is absent),
and COCO folders the tests write from its real images. What a user relies on: the sweep file
runs and keeps the best checkpoint, logs ``val/map`` and draws boxes; mAP is 1 for perfect
predictions and follows the IoU thresholds for shifted ones; their own COCO folder loads with its
boxes scaled with the image; a malformed annotation is one line naming the file and the entry,
from the data module and as exit 2 from the CLI with nothing written; a promoted detector loads
back and re-measures the mAP it was promoted with.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
import torch

from nasforge.platform.cli import main
from nasforge.tasks.coco_data import CocoDetectionDataModule
from nasforge.tasks.coco_format import AnnotationError, read_coco

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- must-show 1
@pytest.fixture(scope="module")
def crnas_sweep(tmp_path_factory, pennfudan_zip):
    """sweeps/pennfudan_crnas.yaml itself, cut to 2 trials of 1 epoch on 8 training and 4
    validation images, W&B offline: (runs root, study)."""
    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.sweep import run_sweep

    root = tmp_path_factory.mktemp("det") / "runs"
    cfg = load_sweep(
        REPO / "sweeps" / "pennfudan_crnas.yaml",
        {
            "budget.trials": 2,
            "trainer.max_epochs": 1,
            "task.data.path": str(pennfudan_zip),
            "task.data.subset": 8,
            "task.data.val_subset": 4,
            "tracking.mode": "offline",
        },
    )
    os.environ.setdefault("WANDB_MODE", "offline")
    return root, run_sweep(cfg, root=str(root), show_progress=False)


@pytest.mark.slow
def test_crnas_sweep_logs_map_keeps_best_checkpoint_and_draws_boxes(crnas_sweep):
    root, study = crnas_sweep
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for t in trials:
        m = t.user_attrs["metrics"]
        assert 0.0 <= m["val/map"] <= m["val/map_50"] <= 1.0 and t.values == [m["val/map"]]
        assert m["cost/flops"] <= 581_000_000  # the sweep's constraint: equal FLOPs
        assert os.path.isfile(t.user_attrs["checkpoint"])
        boxes = Path(t.user_attrs["trial_dir"]) / "boxes"
        assert sorted(p.name for p in boxes.iterdir()) == [f"epoch000_{i}.png" for i in range(4)]
        genotype = json.loads(t.user_attrs["genotype"])
        assert genotype["sample"]["realloc/depths"].count("-") == 3
        # W&B's offline run holds the drawn boxes too
        media = Path(t.user_attrs["wandb_run_dir"]) / "files" / "media" / "images" / "val"
        assert any(p.name.startswith("boxes") for p in media.iterdir())


# ----------------------------------------------------------------------------- must-show 2
def _box_metric():
    from torchmetrics.detection import MeanAveragePrecision

    from nasforge.tasks.detection import DetectionTask, create_detector
    from nasforge.search_spaces import create_space

    space = create_space("reallocation", width=8, stem="imagenet")
    sample = {"realloc/depths": "2-2-2-2", **{f"realloc/stage{i}/dilation": 1 for i in range(1, 5)}}
    task = DetectionTask(
        create_detector(space.build_backbone(sample, (3, 64, 64)), 1), num_classes=1
    )
    assert isinstance(task.val_map, MeanAveragePrecision)
    return task.val_map


def test_map_is_one_for_predictions_equal_to_the_truth():
    metric = _box_metric()  # the metric object the task logs val/map from
    truth = [
        {
            "boxes": torch.tensor([[10.0, 20.0, 60.0, 120.0], [70.0, 10.0, 110.0, 90.0]]),
            "labels": torch.tensor([1, 1]),
        }
    ]
    preds = [
        {
            "boxes": truth[0]["boxes"].clone(),
            "scores": torch.tensor([0.9, 0.8]),
            "labels": torch.tensor([1, 1]),
        }
    ]
    metric.update(preds, truth)
    r = metric.compute()
    assert float(r["map"]) == pytest.approx(1.0) and float(r["map_50"]) == pytest.approx(1.0)
    assert float(r["map_75"]) == pytest.approx(1.0)


def test_shifted_boxes_count_only_at_the_iou_thresholds_they_reach():
    # a 100x100 box shifted 20 px sideways: IoU = 80*100 / (2*100*100 - 80*100) = 2/3, so it is a
    # hit at IoU 0.50, 0.55, 0.60, 0.65 (4 of COCO's 10 thresholds) and a miss from 0.70 on
    metric = _box_metric()
    truth = [{"boxes": torch.tensor([[0.0, 0.0, 100.0, 100.0]]), "labels": torch.tensor([1])}]
    preds = [
        {
            "boxes": torch.tensor([[20.0, 0.0, 120.0, 100.0]]),
            "scores": torch.tensor([0.9]),
            "labels": torch.tensor([1]),
        }
    ]
    metric.update(preds, truth)
    r = metric.compute()
    assert float(r["map_50"]) == pytest.approx(1.0)
    assert float(r["map_75"]) == pytest.approx(0.0)
    assert float(r["map"]) == pytest.approx(0.4)
    metric.reset()
    # a wrong class never counts, whatever its overlap
    metric.update([{**preds[0], "boxes": truth[0]["boxes"], "labels": torch.tensor([2])}], truth)
    assert float(metric.compute()["map_50"]) == pytest.approx(0.0)


# ----------------------------------------------------------------------------- must-show 3
def write_coco_folder(pennfudan_zip: Path, folder: Path, n: int = 4) -> dict:
    """``n`` real Penn-Fudan images in ``folder/img/`` and our own annotations file (no splits):
    its boxes are the shared file's, renumbered. Returns the annotations written."""
    with zipfile.ZipFile(pennfudan_zip) as z:
        src = json.loads(z.read("annotations.json"))
        images = src["images"][:n]
        (folder / "img").mkdir(parents=True)
        out = {"images": [], "annotations": [], "categories": [{"id": 7, "name": "pedestrian"}]}
        for k, im in enumerate(images, 1):
            name = f"img/photo{k}.png"
            (folder / name).write_bytes(z.read(im["file_name"]))
            out["images"].append(
                {"id": 100 + k, "file_name": name, "width": im["width"], "height": im["height"]}
            )
            for a in src["annotations"]:
                if a["image_id"] == im["id"]:
                    out["annotations"].append(
                        {
                            "id": len(out["annotations"]) + 1,
                            "image_id": 100 + k,
                            "category_id": 7,
                            "bbox": a["bbox"],
                            "iscrowd": 0,
                        }
                    )
    (folder / "labels.json").write_text(json.dumps(out))
    return out


def test_coco_folder_loads_with_boxes_scaled_with_the_image(pennfudan_zip, tmp_path):
    ann = write_coco_folder(pennfudan_zip, tmp_path / "mydata")
    dm = CocoDetectionDataModule(
        path=str(tmp_path / "mydata"), image_size=96, val_fraction=0.25, batch_size=2, augment=0.0
    )
    assert (
        dm.num_classes == 1 and dm.class_names == ["pedestrian"] and dm.input_shape == (3, 96, 96)
    )
    dm.setup("fit")
    assert len(dm.train_set) == 3 and len(dm.val_set) == 1
    first = ann["images"][0]
    image, boxes, _ = dm._load()[1][0]  # the first image of the file, decoded and resized
    assert min(image.shape[-2:]) == 96
    scale = 96 / min(first["width"], first["height"])
    want = [
        [
            a["bbox"][0] * scale,
            a["bbox"][1] * scale,
            (a["bbox"][0] + a["bbox"][2]) * scale,
            (a["bbox"][1] + a["bbox"][3]) * scale,
        ]
        for a in ann["annotations"]
        if a["image_id"] == first["id"]
    ]
    assert torch.allclose(boxes, torch.tensor(want), atol=1.0)  # resize rounds the image size
    images, targets = next(iter(dm.train_dataloader()))
    assert len(images) == 2 and images[0].dtype == torch.float32 and float(images[0].max()) <= 1.0
    assert all(set(t["labels"].tolist()) == {1} for t in targets)  # category 7 is label 1


def test_augmentation_moves_boxes_with_the_image(pennfudan_zip, tmp_path):
    write_coco_folder(pennfudan_zip, tmp_path / "mydata", n=2)
    dm = CocoDetectionDataModule(
        path=str(tmp_path / "mydata"), image_size=96, val_fraction=0.5, augment=1.0
    )
    dm.setup("fit")
    torch.manual_seed(0)
    image0, boxes0, _ = dm.train_set.items[0]
    for _ in range(10):
        image, target = dm.train_set[0]
        h, w = image.shape[-2:]
        b = target["boxes"]
        assert len(b) == len(target["labels"]) and len(b) <= len(boxes0)
        assert (
            (b[:, 0] >= 0).all()
            and (b[:, 2] <= w).all()
            and (b[:, 1] >= 0).all()
            and (b[:, 3] <= h).all()
        )
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()


def _corrupt(ann: dict, what: str) -> str:
    """Make ``ann`` malformed in one way; return what the error must name."""
    if what == "box outside":
        ann["annotations"][1]["bbox"] = [ann["images"][0]["width"] - 5, 10, 40, 40]
        ann["annotations"][1]["image_id"] = ann["images"][0]["id"]
        return "annotation id 2"
    if what == "negative size":
        ann["annotations"][0]["bbox"][2] = -3
        return "annotation id 1"
    if what == "unknown category":
        ann["annotations"][2]["category_id"] = 99
        return "annotation id 3"
    if what == "missing image":
        ann["images"][1]["file_name"] = "img/not_there.png"
        return "image id 102"
    raise ValueError(what)


@pytest.mark.parametrize(
    "what, reason",
    [
        ("box outside", "ends outside the"),
        ("negative size", "negative"),
        ("unknown category", "unknown category_id 99"),
        ("missing image", "missing"),
    ],
)
def test_malformed_annotation_is_one_line_naming_file_and_entry(
    pennfudan_zip, tmp_path, capsys, what, reason
):
    folder = tmp_path / "mydata"
    ann = write_coco_folder(pennfudan_zip, folder)
    entry = _corrupt(ann, what)
    (folder / "labels.json").write_text(json.dumps(ann))
    with pytest.raises(AnnotationError) as e:
        read_coco(str(folder))
    msg = str(e.value)
    assert "\n" not in msg and "labels.json" in msg and entry in msg and reason in msg
    with pytest.raises(AnnotationError):  # the data module says the same when it reads
        CocoDetectionDataModule(path=str(folder)).setup("fit")
    # the CLI: one line, exit 2, no run folder
    sweep = tmp_path / "s.yaml"
    text = (REPO / "sweeps" / "pennfudan_crnas.yaml").read_text()
    sweep.write_text(
        text.replace("name: pennfudan             #", f"name: coco\n    path: {folder}\n    #")
    )
    code = main(["sweep", "run", str(sweep), "--root", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and entry in err and reason in err
    assert not (tmp_path / "runs").exists()


def test_the_pennfudan_zip_uses_its_own_split(pennfudan_zip):
    from nasforge.tasks.coco_data import PennFudanDataModule

    coco = read_coco(str(pennfudan_zip))
    assert len(coco.images) == 170 and sum(len(i.boxes) for i in coco.images) == 423
    dm = PennFudanDataModule(path=str(pennfudan_zip), image_size=64, augment=0.0)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set)) == (136, 34)
    assert sum(len(b) for _, b, _ in dm.val_set.items) == 88


# ----------------------------------------------------------------------------- registry
@pytest.mark.slow
def test_promoted_detector_loads_and_re_measures_its_map(crnas_sweep, tmp_path):
    from nasforge.platform.registry import evaluate, load, promote

    root, study = crnas_sweep
    reg = tmp_path / "registry"
    res = promote("pennfudan_crnas", best=True, root=str(root), registry=reg, link_wandb=False)
    model = load(f"pennfudan_crnas:{res.version.version}", registry=reg)
    out = model([torch.rand(3, 128, 170)])  # a detector: images in [0, 1] -> boxes, scores, labels
    assert set(out[0]) == {"boxes", "scores", "labels"}
    measured = evaluate(f"pennfudan_crnas:{res.version.version}", registry=reg)
    assert measured["val/map"] == pytest.approx(study.best_value, abs=1e-6)
    assert measured["val/map_50"] == pytest.approx(
        study.best_trial.user_attrs["metrics"]["val/map_50"], abs=1e-6
    )


@pytest.mark.slow
def test_export_says_what_of_a_detector_exports(crnas_sweep, tmp_path, capsys):
    from nasforge.platform.registry import promote

    root, _ = crnas_sweep
    reg = tmp_path / "registry"
    promote("pennfudan_crnas", best=True, root=str(root), registry=reg, link_wandb=False)
    for fmt in ("torchscript", "onnx"):
        code = main(
            [
                "registry",
                "export",
                "pennfudan_crnas",
                "--format",
                fmt,
                "-o",
                str(tmp_path / f"det.{fmt}"),
                "--registry",
                str(reg),
            ]
        )
        out = capsys.readouterr().out
        assert code == 0 and (tmp_path / f"det.{fmt}").is_file()
        assert (
            "exported: normalisation + backbone + FPN + FCOS head" in out and "not exported:" in out
        )
        assert "NMS" in out


def test_a_coco_folder_that_passed_its_check_is_not_read_again_until_a_file_changes(
    pennfudan_zip, tmp_path, monkeypatch
):
    """Every `load_sweep` (the CLI, each worker, each DDP rank) checks the data set; the image
    headers are read once per version of the files, and an edit is checked again."""
    from nasforge.tasks import coco_format

    monkeypatch.setenv("NASFORGE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "mydata"
    ann = write_coco_folder(pennfudan_zip, folder)
    reads = []
    real = coco_format.read_coco
    monkeypatch.setattr(coco_format, "read_coco", lambda *a: reads.append(a) or real(*a))
    coco_format.check_path(str(folder))
    coco_format.check_path(str(folder))
    assert len(reads) == 1
    labels = folder / "labels.json"
    entry = _corrupt(ann, "box outside")
    labels.write_text(json.dumps(ann))
    st = labels.stat()  # an edit a second later, whatever the file system's clock resolution
    os.utime(labels, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(AnnotationError, match=entry):
        coco_format.check_path(str(folder))
    assert len(reads) == 2

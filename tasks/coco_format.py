"""Reading and checking a COCO-format detection data set: a folder or zip with images and one
annotations JSON, the form every labelling tool exports (CVAT, Label Studio, Roboflow, ...).

`read_coco(path)` returns a `CocoSet` (images, boxes per image, categories, the file's own
``splits`` when it has them) or raises `AnnotationError` whose message is one line naming the
file and the entry at fault::

    data/annotations.json: annotation id 7 (image 3 'img/b.png'): box [500, 10, 80, 40] ends
    outside the 559x536 image

Checked: the JSON parses and has ``images``, ``annotations`` and ``categories``; every image
entry has an id, a ``file_name`` present in the folder or zip, and a positive width and height
(equal to the file's own size, read from its header); every annotation names an existing image
and a known category and has a ``bbox`` [x, y, w, h] of positive size inside its image (COCO's
convention: 0-based, x + w <= width). Crowd annotations (``iscrowd: 1``) are not boxes to find
and are left out. No torch here (json, zipfile and PIL's header reader only), so the sweep file
check can run it before anything is written; `check_path` remembers a data set that passed.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from typing import Callable

from .files import open_tree


class AnnotationError(ValueError):
    """A malformed annotations file or entry; the message is one line naming both."""


@dataclass
class CocoImage:
    id: int
    file_name: str
    width: int
    height: int
    boxes: list[list[float]] = field(default_factory=list)  # [x, y, w, h] per object
    labels: list[int] = field(default_factory=list)  # contiguous class index, 1..K per object


@dataclass
class CocoSet:
    source: str  # the folder or zip
    annotations: str  # the JSON's name inside it
    images: list[CocoImage]
    categories: list[str]  # names; label k (1-based) is categories[k - 1]
    splits: dict[str, list[int]]  # the file's own {"train": [image ids], "val": [...]}, or {}
    read: Callable[[str], bytes] = field(repr=False, default=None)  # bytes of a file inside


def _opener(path: str) -> tuple[list[str], Callable[[str], bytes]]:
    try:
        return open_tree(path, "COCO")
    except FileNotFoundError:
        raise AnnotationError(f"{path}: neither a folder nor a zip") from None


def _find_json(path: str, names: list[str], annotations: str | None) -> str:
    if annotations is not None:
        if annotations not in names:
            raise AnnotationError(f"{path}: no {annotations!r} inside")
        return annotations
    found = sorted(n for n in names if n.lower().endswith(".json") and not n.startswith("__MACOSX"))
    if len(found) != 1:
        what = (
            "no .json file" if not found else f"{len(found)} .json files ({', '.join(found[:4])})"
        )
        raise AnnotationError(f"{path}: {what}; name the COCO annotations file with annotations=")
    return found[0]


def _image_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:  # reads the header only
        return im.size  # (width, height)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_image(where: str, entry, names: set[str], read, base: str) -> CocoImage:
    if not isinstance(entry, dict) or not {"id", "file_name", "width", "height"} <= set(entry):
        raise AnnotationError(
            f"{where}: an image entry needs id, file_name, width and height, got {entry!r}"[:300]
        )
    iid, name, w, h = entry["id"], entry["file_name"], entry["width"], entry["height"]
    tag = f"{where}: image id {iid} ({name!r})"
    if not (_number(w) and _number(h)) or w <= 0 or h <= 0:
        raise AnnotationError(f"{tag}: width and height must be positive, got {w}x{h}")
    rel = name if name in names else f"{base}{name}" if f"{base}{name}" in names else None
    if rel is None:
        raise AnnotationError(f"{tag}: the image file is missing")
    try:
        size = _image_size(read(rel))
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise AnnotationError(f"{tag}: not a readable image ({type(e).__name__})") from None
    if size != (int(w), int(h)):
        raise AnnotationError(f"{tag}: the file is {size[0]}x{size[1]} but the entry says {w}x{h}")
    return CocoImage(int(iid), rel, int(w), int(h))


def _check_box(where: str, ann, images: dict[int, CocoImage], labels: dict[int, int]) -> None:
    aid = ann.get("id", "?") if isinstance(ann, dict) else "?"
    if not isinstance(ann, dict):
        raise AnnotationError(f"{where}: an annotation is an object, got {ann!r}"[:300])
    img = images.get(ann.get("image_id"))
    if img is None:
        raise AnnotationError(
            f"{where}: annotation id {aid}: image_id {ann.get('image_id')!r} "
            "is not an image of the file"
        )
    tag = f"{where}: annotation id {aid} (image {img.id} {img.file_name!r})"
    if ann.get("category_id") not in labels:
        raise AnnotationError(
            f"{tag}: unknown category_id {ann.get('category_id')!r}; "
            f"categories: {', '.join(map(str, labels))}"
        )
    box = ann.get("bbox")
    if not isinstance(box, list) or len(box) != 4 or not all(_number(v) for v in box):
        raise AnnotationError(f"{tag}: bbox must be [x, y, width, height], got {box!r}")
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise AnnotationError(f"{tag}: box {box} has a negative or zero size ({w} x {h})")
    if x < 0 or y < 0 or x + w > img.width or y + h > img.height:
        raise AnnotationError(f"{tag}: box {box} ends outside the {img.width}x{img.height} image")
    if ann.get("iscrowd", 0):
        return  # a crowd region is not an object to find
    img.boxes.append([float(v) for v in box])
    img.labels.append(labels[ann["category_id"]])


def read_coco(path: str, annotations: str | None = None) -> CocoSet:
    """Read and check the COCO data set in folder or zip ``path``; see the module docstring.
    ``annotations`` names the JSON inside (default: the only .json there)."""
    names, read = _opener(path)
    jname = _find_json(path, names, annotations)
    where = os.path.join(path, jname)
    try:
        data = json.loads(read(jname))
    except ValueError as e:
        raise AnnotationError(f"{where}: not valid JSON ({e})") from None
    missing = [
        k
        for k in ("images", "annotations", "categories")
        if not isinstance(data, dict) or k not in data
    ]
    if missing:
        raise AnnotationError(
            f"{where}: no {', '.join(missing)} list (not a COCO annotations file)"
        )
    cats = data["categories"]
    if not cats or not all(isinstance(c, dict) and "id" in c and "name" in c for c in cats):
        raise AnnotationError(f"{where}: categories must be a non-empty list of {{id, name}}")
    cats = sorted(cats, key=lambda c: c["id"])
    labels = {c["id"]: k + 1 for k, c in enumerate(cats)}  # COCO ids may have gaps; labels do not
    base = jname.rsplit("/", 1)[0] + "/" if "/" in jname else ""  # file names relative to the JSON
    name_set = set(names)
    images: dict[int, CocoImage] = {}
    for entry in data["images"]:
        img = _check_image(where, entry, name_set, read, base)
        if img.id in images:
            raise AnnotationError(f"{where}: image id {img.id} appears twice")
        images[img.id] = img
    if not images:
        raise AnnotationError(f"{where}: the images list is empty")
    for ann in data["annotations"]:
        _check_box(where, ann, images, labels)
    splits = data.get("splits") or {}
    for split, ids in splits.items():
        unknown = [i for i in ids if i not in images]
        if unknown:
            raise AnnotationError(
                f"{where}: splits.{split} lists image id {unknown[0]}, which is not an image"
            )
    return CocoSet(
        source=path,
        annotations=jname,
        images=list(images.values()),
        categories=[str(c["name"]) for c in cats],
        splits=splits,
        read=read,
    )


def check_path(path: str, annotations: str | None = None, **_data_options) -> None:
    """The sweep-file check: raise AnnotationError for a malformed data set (nothing returned).
    The data module's other options (image size, ...) do not matter here. A data set that passed
    is not read again (every image's header) until a file of it changes: the pass is remembered
    in the cache folder under its `source_key` (names, sizes and modification times)."""
    import hashlib

    from .data_cache import cache_dir, source_key

    key = hashlib.sha1(f"{source_key(path)}|{annotations}".encode()).hexdigest()[:16]
    passed = os.path.join(cache_dir(), f"coco-checked-{key}")
    if os.path.exists(passed):
        return
    read_coco(path, annotations)
    with open(passed, "w") as f:
        f.write(os.path.abspath(path) + "\n")

"""Seeded generators of look-alike white-cell data in each layout that :mod:`.wbc` reads.

Report 3's data (the course copy of Raabin-WBC with CAMELYON16 and pRCC) may
not be redistributed, yet its notebooks have to run without it. The cells,
tissue patches and kidney tiles are drawn by :mod:`.wbc_drawing`; this module
writes them in four layouts:

* :func:`generate_wbc_course`, the course copy: ``WBC_100/train`` and ``val``
  with the nested fractions ``WBC_50``, ``WBC_10`` and ``WBC_1`` (the first
  50, 10 and 1 % of each class's images in one shuffled order, at least one
  image per class), binary masks ({0, 1} JPEGs) for every tenth image of that
  order (so each fraction keeps ~10 % of masks, one per class at least), the
  CAMELYON16 patches (half tumour; tumour masks for ~10 % of the training
  tumour patches) and the unlabelled pRCC tiles;
* :func:`generate_raabin`, Raabin-WBC's ``Train/``, ``TestA/`` and ``TestB/``;
* :func:`generate_pbc`, PBC's lower-case class folders with its file-name
  prefixes (``BA_``, ``EO_``, ``LY_``, ``MO_``, ``SNE_``);
* :func:`generate_zheng`, Zheng et al.'s ``Dataset 1/`` and ``Dataset 2/``
  (BMP images, PNG masks of nucleus 255 and cytoplasm 128, label CSVs with
  their two spellings of the class column).

Each layout draws its cells with its own stream (so a layout's cells are not
copies of another's) and its own smear style, the second Zheng data set and
Raabin's ``TestB/`` from a shifted stain, as another laboratory would give.
The same seed and spec give byte-identical files (same NumPy, OpenCV and
Pillow on one platform); each tree is built under a temporary name, so an
interrupted run leaves none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..io import atomic_directory, csv_text, new_dataset_root
from ..profiles import WbcSpec
from .wbc import (CAM16_CLASSES, CAM16_DIR, CAM16_SPLITS, FRACTIONS, PRCC_DIR, RAABIN_SPLITS, WBC_CLASSES,
                  ZHENG_CSV, ZHENG_LABELS)
from .wbc_drawing import SmearStyle, render_kidney_tile, render_tissue_patch, render_white_cell

__all__ = ["GENERATOR_VERSION", "ROOT_NAMES", "generate_pbc", "generate_raabin", "generate_wbc_course",
           "generate_zheng", "nested_counts"]

#: Bump whenever the generated images, a layout or a profile's sizes change: it is part of the cache key
#: (a cached copy of other sizes is refused, not silently reused).
GENERATOR_VERSION = 4
#: The top folder each generator writes (the course copy has none of its own: the folder holding WBC_100/).
ROOT_NAMES = {"wbc": "wbc_course", "raabin": "Raabin-WBC", "pbc": "PBC_dataset_normal_DIB", "zheng": "segmentation_WBC"}
JPEG_QUALITY = 95
#: PBC's file-name prefix of each class.
PBC_PREFIXES = {"Basophil": "BA", "Eosinophil": "EO", "Lymphocyte": "LY", "Monocyte": "MO", "Neutrophil": "SNE"}

# Stream codes: one per layout and part, so adding images to one part moves no other.
_STREAMS = {"wbc_train": 1, "wbc_val": 2, "cam16": 3, "prcc": 4, "raabin": 5, "pbc": 6, "zheng": 7, "order": 8}


def nested_counts(per_class: int) -> dict[int, int]:
    """Images per class in each ``WBC_<n>``: ``n`` % of ``per_class``, rounded, at least one."""
    return {fraction: max(1, round(per_class * fraction / 100)) for fraction in FRACTIONS}


def generate_wbc_course(dest: str | Path, spec: WbcSpec, seed: int = 0) -> Path:
    """Write the course copy (``WBC_<n>``, ``CAM16_100cls_10mask``, ``pRCC_nolabel``) to ``dest/wbc_course``.

    Returns the folder holding ``WBC_100/``. Raises ``FileExistsError`` if it
    exists (never overwritten) and ``ValueError`` for an invalid spec or seed.
    """
    final = _start(dest, "wbc", spec, seed)
    order = np.random.default_rng([seed, _STREAMS["order"]])
    counts = nested_counts(spec.train_per_class)
    every = max(1, round(1 / spec.mask_share)) if spec.mask_share > 0 else None
    with atomic_directory(final) as root:
        for label, cls in enumerate(WBC_CLASSES):
            # One shuffled order per class: WBC_n holds its first counts[n] images, every tenth has a mask.
            ranks = order.permutation(spec.train_per_class)
            for index in range(spec.train_per_class):
                rank = int(ranks[index])
                image, labels = _cell(seed, "wbc_train", label, index, spec.image_size)
                name = f"{cls[:3].upper()}_{index:05d}.jpg"
                has_mask = every is not None and rank % every == 0
                for fraction in FRACTIONS:
                    if rank >= counts[fraction]:
                        continue
                    folder = root / f"WBC_{fraction}" / "train"
                    _save(folder / "data" / cls / name, image)
                    if has_mask:
                        _save(folder / "mask" / cls / name, (labels > 0).astype(np.uint8))
            for index in range(spec.val_per_class):
                image, _ = _cell(seed, "wbc_val", label, index, spec.image_size)
                _save(root / "WBC_100" / "val" / "data" / cls / f"{cls[:3].upper()}_V{index:05d}.jpg", image)
        _write_cam16(root / CAM16_DIR, spec, seed)
        for index in range(spec.prcc_tiles):
            rng = np.random.default_rng([seed, _STREAMS["prcc"], index])
            _save(root / PRCC_DIR / f"pRCC_{index:05d}.jpg", render_kidney_tile(rng, spec.prcc_size))
    return final


def _write_cam16(folder: Path, spec: WbcSpec, seed: int) -> None:
    for split_index, (split, total) in enumerate(zip(CAM16_SPLITS, spec.cam16_images)):
        tumours = total // 2
        masked = max(1, round(tumours * spec.mask_share)) if split == "train" and tumours else 0
        for index in range(total):
            tumour = index < tumours
            rng = np.random.default_rng([seed, _STREAMS["cam16"], split_index, index])
            image, mask = render_tissue_patch(rng, tumour, spec.cam16_size)
            cls = CAM16_CLASSES[int(tumour)]
            name = f"{split}_{index:05d}.jpg"
            _save(folder / split / "data" / cls / name, image)
            if tumour and index < masked:
                _save(folder / split / "mask" / cls / name, mask.astype(np.uint8))


def generate_raabin(dest: str | Path, spec: WbcSpec, seed: int = 0) -> Path:
    """Write Raabin-WBC's layout (``Train/``, ``TestA/``, ``TestB/``) to ``dest/Raabin-WBC``; ``TestB`` has a shifted stain."""
    final = _start(dest, "raabin", spec, seed)
    sizes = {"Train": spec.train_per_class, "TestA": spec.val_per_class, "TestB": spec.val_per_class}
    with atomic_directory(final) as root:
        for part_index, folder in enumerate(RAABIN_SPLITS):
            for label, cls in enumerate(WBC_CLASSES):
                for index in range(sizes[folder]):
                    image, _ = _cell(seed, "raabin", label, index, spec.image_size, part=part_index,
                                     shifted=folder == "TestB")
                    _save(root / folder / cls / f"{index:05d}.jpg", image)
    return final


def generate_pbc(dest: str | Path, spec: WbcSpec, seed: int = 0) -> Path:
    """Write PBC's layout (the five white-cell folders, lower case, PBC's prefixes) to ``dest/PBC_dataset_normal_DIB``."""
    final = _start(dest, "pbc", spec, seed)
    with atomic_directory(final) as root:
        for label, cls in enumerate(WBC_CLASSES):
            for index in range(spec.train_per_class):
                image, _ = _cell(seed, "pbc", label, index, spec.image_size)
                _save(root / cls.lower() / f"{PBC_PREFIXES[cls]}_{100000 + index}.jpg", image)
    return final


def generate_zheng(dest: str | Path, spec: WbcSpec, seed: int = 0) -> Path:
    """Write Zheng et al.'s layout (``Dataset 1/``, ``Dataset 2/``, label CSVs) to ``dest/segmentation_WBC``.

    ``Dataset 2`` is drawn with a shifted stain, and its CSV names the class
    column ``class`` where ``Dataset 1``'s says ``class label``, as in the release.
    """
    final = _start(dest, "zheng", spec, seed)
    numbers = {name: number for number, name in ZHENG_LABELS.items()}
    with atomic_directory(final) as root:
        for dataset, column in ((1, "class label"), (2, "class")):
            folder = root / f"Dataset {dataset}"
            folder.mkdir()
            rows = []
            for index in range(spec.val_per_class * len(WBC_CLASSES)):
                label = index % len(WBC_CLASSES)
                image, labels = _cell(seed, "zheng", label, index, spec.image_size, part=dataset,
                                      shifted=dataset == 2)
                Image.fromarray(image).save(folder / f"{index + 1:03d}.bmp")
                # Nucleus 255, cytoplasm 128, background 0, as the expert masks.
                Image.fromarray(np.array([0, 128, 255], np.uint8)[labels]).save(folder / f"{index + 1:03d}.png")
                rows.append([index + 1, numbers[WBC_CLASSES[label]]])
            (root / ZHENG_CSV.format(dataset=f"Dataset {dataset}")).write_text(csv_text(["image ID", column], rows))
    return final


# --------------------------------------------------------------------------- shared


def _start(dest: str | Path, layout: str, spec: WbcSpec, seed: int) -> Path:
    _check_spec(spec)
    return new_dataset_root(dest, ROOT_NAMES[layout], seed)


def _check_spec(spec: WbcSpec) -> None:
    if spec.image_size < 32 or spec.cam16_size < 32 or spec.prcc_size < 32:
        raise ValueError(f"image sides must be at least 32 px, got {spec.image_size}, {spec.cam16_size}, "
                         f"{spec.prcc_size}")
    if spec.train_per_class < 1 or spec.val_per_class < 1:
        raise ValueError(f"need at least one training and one validation image per class, got "
                         f"{spec.train_per_class} and {spec.val_per_class}")
    if not 0 <= spec.mask_share <= 1:
        raise ValueError(f"mask_share is a share of images, between 0 and 1, got {spec.mask_share}")
    if len(spec.cam16_images) != len(CAM16_SPLITS) or min(spec.cam16_images) < 2:
        raise ValueError(f"cam16_images gives (train, val, test), each at least 2 (one per class), "
                         f"got {spec.cam16_images}")
    if spec.prcc_tiles < 1:
        raise ValueError(f"need at least one pRCC tile, got {spec.prcc_tiles}")


def _cell(seed: int, stream: str, label: int, index: int, size: int, *, part: int = 0,
          shifted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One white cell of class ``label``, from its own stream: (image, labels 0/1/2)."""
    rng = np.random.default_rng([seed, _STREAMS[stream], part, label, index])
    style = SmearStyle.draw(rng, shifted=shifted)
    return render_white_cell(rng, WBC_CLASSES[label], size, style=style)


def _save(path: Path, image: np.ndarray) -> None:
    # Inside a tree built under a temporary name: no per-file rename needed.
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=JPEG_QUALITY)

"""Speed of cytobook.handmade: nucleus segmentation and handmade features per image.

Not a test: a plain script that times :func:`segment_nucleus`, the shape and
colour features on a given segmentation, and the whole
:func:`handmade_features` on generated lymphocyte-like images (a textured
dark purple nucleus, possibly lobed, in pale cytoplasm, among pink red cells
on a pale background, 224 x 224 like the DLMI 2023 images), and, when
``$CYTOBOOK_REAL_DATA`` names the shared sample folder, on the real PBC
lymphocytes (360 x 363) and the same resized to 224 x 224. Then the thread
speed-up of :func:`features_table` on the PBC files (reading included).

    python bench/bench_handmade.py --n 200 --repeat 5
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from timing import best_of

from cytobook import handmade as hm
from cytobook.io import read_image


def synthetic_lymphocytes(n: int, side: int = 224, seed: int = 0) -> list[np.ndarray]:
    """``n`` smear-like images: a textured purple nucleus in cytoplasm, red cells around."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        image = np.empty((side, side, 3), np.uint8)
        image[:] = rng.integers(225, 245, size=3)
        for _ in range(int(rng.integers(3, 8))):  # red cells
            centre = tuple(int(v) for v in rng.integers(0, side, size=2))
            cv2.circle(image, centre, int(rng.integers(side // 10, side // 7)), (205, 160, 170), -1)
        centre = np.array([side // 2, side // 2]) + rng.integers(-side // 12, side // 12 + 1, size=2)
        cv2.circle(image, tuple(int(v) for v in centre), int(side * rng.uniform(0.22, 0.3)), (190, 190, 225), -1)
        nucleus = np.zeros((side, side), np.uint8)
        axes = (int(side * rng.uniform(0.14, 0.2)), int(side * rng.uniform(0.12, 0.18)))
        cv2.ellipse(nucleus, tuple(int(v) for v in centre), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        if rng.random() < 0.5:  # a cleft
            cut = tuple(int(v) for v in centre + rng.integers(-axes[0], axes[0] + 1, size=2))
            cv2.circle(nucleus, cut, axes[1] // 2, 0, -1)
        texture = rng.integers(-18, 19, size=(side, side, 1))
        inside = nucleus > 0
        image[inside] = np.clip(np.array([88, 46, 135]) + texture[inside], 0, 255).astype(np.uint8)
        images.append(cv2.GaussianBlur(image, (3, 3), 0))
    return images


def _time_images(label: str, images: list[np.ndarray], repeat: int) -> None:
    segs = [hm.segment_nucleus(image) for image in images]
    steps: list[tuple[str, Callable[[], object]]] = [
        ("segment_nucleus", lambda: [hm.segment_nucleus(image) for image in images]),
        ("shape_features", lambda: [hm.shape_features(seg) for seg in segs]),
        ("colour_ratio_features", lambda: [hm.colour_ratio_features(image, seg) for image, seg in zip(images, segs)]),
        ("handmade_features", lambda: [hm.handmade_features(image) for image in images]),
    ]
    times = best_of([step for _, step in steps], repeat)
    height, width = images[0].shape[:2]
    empty = sum(seg.empty for seg in segs)
    print(f"\n{label}: {len(images)} images, {height}x{width}, {empty} without a nucleus; best of {repeat}")
    print(f"{'step':<24}{'ms/img':>9}{'img/s':>9}")
    for (name, _), seconds in zip(steps, times):
        print(f"{name:<24}{1e3 * seconds / len(images):>9.2f}{len(images) / seconds:>9.0f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="number of generated images, and of PBC images at most (default 200)")
    parser.add_argument("--side", type=int, default=224, help="side of the generated images (default 224)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing, best kept (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="threads for the features_table timing (default 2)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.side < 32 or args.repeat < 1 or args.workers < 1:
        parser.error("--n, --repeat and --workers must be >= 1 and --side >= 32")

    _time_images("generated", synthetic_lymphocytes(args.n, args.side), args.repeat)

    root = os.environ.get("CYTOBOOK_REAL_DATA")
    paths = sorted((Path(root) / "pbc" / "lymphocyte").glob("*.jpg"))[: args.n] if root else []
    if not paths:
        print("\n(set CYTOBOOK_REAL_DATA to the shared data folder to time real PBC lymphocytes)")
        return
    images = [read_image(path) for path in paths]
    _time_images("PBC lymphocytes", images, args.repeat)
    resized = [cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA) for image in images]
    _time_images("PBC lymphocytes resized", resized, args.repeat)

    one, many = best_of(
        [lambda: hm.features_table(paths, workers=1), lambda: hm.features_table(paths, workers=args.workers)],
        args.repeat,
    )
    print(f"\nfeatures_table on {len(paths)} PBC files (reading included), best of {args.repeat}")
    print(f"1 thread {len(paths) / one:.0f} img/s, {args.workers} threads {len(paths) / many:.0f} img/s ({one / many:.2f}x)")


if __name__ == "__main__":
    main()

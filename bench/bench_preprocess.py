"""Throughput of cytobook.preprocess: per-image loop vs batch function.

Not a test: a plain script that times each preprocessing step on random
synthetic cells (textured ellipses of random size and place on black, like
segmented C-NMC cells) and prints images per second. "loop" is what a
notebook would otherwise write, ``np.stack([f(image) for image in images])``,
so both columns include building the (N, ...) output array.

    python bench/bench_preprocess.py --n 500 --size 224
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import cv2
import numpy as np

from timing import best_of

from cytobook import preprocess as pp


def synthetic_cells(n: int, side: int, seed: int = 0) -> np.ndarray:
    """``n`` random cells of ``side`` x ``side``: textured ellipses on black."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, side, side, 3), np.uint8)
    texture = rng.integers(-25, 26, size=(side, side, 1))
    for image in images:
        mask = np.zeros((side, side), np.uint8)
        axes = (int(rng.integers(side // 8, side // 3)), int(rng.integers(side // 8, side // 3)))
        centre = (int(rng.integers(side // 3, 2 * side // 3)), int(rng.integers(side // 3, 2 * side // 3)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        colour = rng.integers(70, 200, size=3)
        image[mask > 0] = np.clip(colour + texture[mask > 0], 1, 255).astype(np.uint8)
    return images


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="number of synthetic cells (default 256)")
    parser.add_argument("--size", type=int, default=224, help="output side for the crops (default 224)")
    parser.add_argument("--side", type=int, default=450, help="input side, C-NMC is 450 (default 450)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing, best kept (default 5)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.size < 1 or args.side < 8 or args.repeat < 1:
        parser.error("--n, --size and --repeat must be >= 1 and --side >= 8")

    images = synthetic_cells(args.n, args.side)
    size = args.size
    steps: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        (
            "threshold_crop_square",
            lambda: np.stack([pp.threshold_crop_square(image, size=size) for image in images]),
            lambda: pp.threshold_crop_square_batch(images, size=size),
        ),
        (
            "clahe_y",
            lambda: np.stack([pp.clahe_y(image) for image in images]),
            lambda: pp.clahe_y_batch(images),
        ),
        (
            "otsu_hull_crop",
            lambda: np.stack([pp.otsu_hull_crop(image, size=size) for image in images]),
            lambda: pp.otsu_hull_crop_batch(images, size=size),
        ),
    ]

    print(f"{args.n} synthetic cells, {args.side}x{args.side} uint8 -> {size}x{size}; best of {args.repeat}")
    print(f"{'step':<24}{'loop img/s':>12}{'batch img/s':>13}{'speed-up':>10}")
    for name, loop, batch in steps:
        loop_s, batch_s = best_of([loop, batch], args.repeat)
        print(f"{name:<24}{args.n / loop_s:>12.0f}{args.n / batch_s:>13.0f}{loop_s / batch_s:>9.2f}x")


if __name__ == "__main__":
    main()

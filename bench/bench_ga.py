"""Speed of the genetic algorithm's fitness: vectorised population vs a per-individual sklearn loop.

Not a test: a plain script. "loop" is what one would otherwise write, for
each chromosome ``f1_score(y, weighted_ensemble(p, w) > 0.5, average="weighted")``;
"vectorised" is :func:`cytobook.ensemble.population_fitness`, one matrix
product for the whole population and the weighted F1 from confusion counts.
The script checks that both give the same numbers, then times one full
:func:`cytobook.ensemble.genetic_weights` run with the default settings.

    python bench/bench_ga.py --population 50 --samples 2000 --members 5
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import f1_score

from timing import best_of

from cytobook import ensemble as en


def synthetic_members(members: int, samples: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Labels and ``members`` imperfect probability vectors, each right on about 79-95 % of them."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, samples)
    probabilities = []
    for skill in np.linspace(0.8, 1.6, members):
        logits = skill * (2 * y - 1) + rng.normal(0, 1, samples)
        probabilities.append(1 / (1 + np.exp(-logits)))
    return probabilities, y


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=50, help="chromosomes per evaluation (default 50)")
    parser.add_argument("--samples", type=int, default=2000, help="validation samples (default 2000)")
    parser.add_argument("--members", type=int, default=5, help="ensemble members (default 5)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing, best kept (default 5)")
    args = parser.parse_args(argv)
    if min(args.population, args.samples, args.members, args.repeat) < 1 or args.population < 2:
        parser.error("--population must be >= 2 and the other sizes >= 1")

    probabilities, y = synthetic_members(args.members, args.samples)
    stacked = en.stack_probabilities(probabilities)
    population = en.random_population(np.random.default_rng(1), args.population, args.members)

    def loop() -> np.ndarray:
        return np.array(
            [
                f1_score(y, en.weighted_ensemble(probabilities, w) > 0.5, average="weighted", zero_division=0)
                for w in population
            ]
        )

    def vectorised() -> np.ndarray:
        return en.population_fitness(population, stacked, y)

    gap = np.max(np.abs(loop() - vectorised()))
    if gap > 1e-12:
        raise SystemExit(f"vectorised fitness differs from sklearn by {gap:g}")

    loop_s, vec_s = best_of([loop, vectorised], args.repeat)
    config = en.GAConfig(population_size=args.population)
    (ga_s,) = best_of([lambda: en.genetic_weights(probabilities, y, config, seed=0)], max(1, args.repeat // 2))
    result = en.genetic_weights(probabilities, y, config, seed=0)
    evaluations = config.restarts * (config.population_size + config.generations * (config.population_size - 1))

    print(
        f"population {args.population} x {args.samples} samples x {args.members} members; "
        f"best of {args.repeat}; max |loop - vectorised| = {gap:.1e}"
    )
    print(f"{'fitness of one population':<34}{'ms':>10}{'chromosomes/s':>16}")
    print(f"{'  sklearn loop':<34}{1e3 * loop_s:>10.2f}{args.population / loop_s:>16.0f}")
    print(f"{'  vectorised':<34}{1e3 * vec_s:>10.2f}{args.population / vec_s:>16.0f}")
    print(f"{'  speed-up':<34}{loop_s / vec_s:>9.1f}x")
    print(
        f"full GA run (GAConfig defaults: {config.generations} generations, {config.restarts} restarts, "
        f"{evaluations} fitness evaluations): {ga_s:.3f} s"
    )
    loop_estimate = evaluations * loop_s / args.population
    print(f"  same run with the sklearn loop would spend about {loop_estimate:.1f} s on fitness")
    print(f"  weights {np.round(result.weights, 3).tolist()}, validation weighted F1 {result.fitness:.4f}")


if __name__ == "__main__":
    main()

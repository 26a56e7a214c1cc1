"""Ensembles over saved probabilities: report 1's average, GA-weighted average and error analysis; report 2's max rule.

The report averages its best networks' positive-class (ALL) probabilities,
plainly (:func:`average_ensemble`) or with weights (:func:`weighted_ensemble`)
learnt on the validation set by a genetic algorithm (:func:`genetic_weights`)
maximising the weighted F1 of the weighted average at threshold 0.5. As the
report describes it: real-coded chromosomes of non-negative weights summing
to one, drawn uniformly on the simplex (:func:`random_population`);
k-tournament selection (:func:`tournament_select`); average crossover with
probability ``crossover_rate`` (:func:`crossover`); single-gene mutation with
probability ``mutation_rate`` (:func:`mutate`); fixed population size and
generations; several restarts. Its settings are not published ("chosen
experimentally"): they are the fields of :class:`GAConfig`.

Our choices, where the report's text does not fix them: a pair that does not
cross passes on a copy of its first parent; each generation keeps its best
individual (elitism of one); ties in fitness (weighted F1 is a step function
of the weights) go to the lower variance of weights, i.e. closest to the
plain average, then to the first found; each restart draws from its own
stream spawned from ``seed``, and crossover and mutation draw as many random
numbers whatever their rates, so the search is deterministic for a seed.
:func:`population_fitness` scores a whole population with one matrix product.

:func:`max_probability_ensemble` is report 2's inference: each cell takes
the label of its most confident member.

:func:`error_analysis` marks which models get each sample right and
:func:`error_summary` counts the report's cases from it. :func:`member_signal`
says how much signal each member has (classes predicted, ROC AUC, degenerate
or not) and :func:`ensemble_gain` compares each ensemble with its best member.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from .evaluation import binary_report, per_class_scores, predict_labels

# ---------------------------------------------------------------------------
# Ensembles


def stack_probabilities(probabilities: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Members' positive-class probabilities, each ``(n,)`` or ``(n, 1)``, as one ``(members, samples)`` array.

    Raises
    ------
    ValueError
        With no member, members of different lengths or other shapes, or non-finite values.
    """
    flat = []
    for index, p in enumerate(probabilities):
        array = np.asarray(p, dtype=float)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise ValueError(f"member {index}: expected probabilities of shape (n,) or (n, 1), got {array.shape}")
        flat.append(array)
    if not flat:
        raise ValueError("an ensemble needs at least one member")
    if len({len(array) for array in flat}) != 1:
        raise ValueError(f"members predict different numbers of samples: {[len(a) for a in flat]}")
    stacked = np.stack(flat)
    if not np.all(np.isfinite(stacked)):
        raise ValueError("member probabilities contain NaN or infinite values")
    return stacked


def average_ensemble(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of the members' positive-class probabilities, shape ``(n,)``."""
    return stack_probabilities(probabilities).mean(axis=0)


def weighted_ensemble(probabilities: Sequence[np.ndarray], weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Weighted mean of the members' positive-class probabilities, shape ``(n,)``.

    ``weights``, one per member, non-negative, are divided by their sum.
    """
    stacked = stack_probabilities(probabilities)
    w = np.asarray(weights, dtype=float)
    if w.shape != (len(stacked),):
        raise ValueError(f"expected {len(stacked)} weights, one per member, got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {w.tolist()}")
    # Same product as population_fitness, so a GA's fitness reproduces exactly here.
    return (w / w.sum()) @ stacked


def confidence(probabilities: np.ndarray) -> np.ndarray:
    """A binary model's confidence in each prediction: its largest class probability, ``max(p, 1 - p)``."""
    probabilities = np.asarray(probabilities, dtype=float)
    return np.maximum(probabilities, 1.0 - probabilities)


def most_confident_member(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """Per sample, the index of the member whose prediction is most confident, shape ``(n,)``.

    A member's confidence is its largest class probability (:func:`confidence`);
    ties go to the first member.
    """
    return confidence(stack_probabilities(probabilities)).argmax(axis=0)


def max_probability_ensemble(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """Report 2's inference (Liu & Long, 2.6): per sample, the probability given by the most confident member.

    The member chosen by :func:`most_confident_member` decides, so
    thresholding the result at 0.5 gives that member's label. Shape ``(n,)``.
    """
    stacked = stack_probabilities(probabilities)
    return stacked[most_confident_member(stacked), np.arange(stacked.shape[1])]


# ---------------------------------------------------------------------------
# Genetic algorithm: operators


@dataclass
class GAConfig:
    """Settings of :func:`genetic_weights` (our defaults: the report does not publish its own).

    Attributes
    ----------
    population_size
        Chromosomes per generation (>= 2).
    generations
        Generations after the initial population (>= 0).
    tournament_size
        Contestants per tournament, ``1 .. population_size``.
    crossover_rate
        Probability that a pair of parents produces the average-crossover child.
    mutation_rate
        Probability that a child has one gene replaced.
    restarts
        Independent runs; the best chromosome of all is kept.
    threshold
        An ensemble predicts ALL where its probability exceeds this.
    """

    population_size: int = 50
    generations: int = 100
    tournament_size: int = 3
    crossover_rate: float = 1.0
    mutation_rate: float = 0.1
    restarts: int = 5
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.population_size < 2:
            raise ValueError(f"population_size must be >= 2, got {self.population_size}")
        if self.generations < 0:
            raise ValueError(f"generations must be >= 0, got {self.generations}")
        if not 1 <= self.tournament_size <= self.population_size:
            raise ValueError(f"tournament_size must be in 1..population_size, got {self.tournament_size}")
        if not 0.0 <= self.crossover_rate <= 1.0:
            raise ValueError(f"crossover_rate must be in [0, 1], got {self.crossover_rate}")
        if not 0.0 <= self.mutation_rate <= 1.0:
            raise ValueError(f"mutation_rate must be in [0, 1], got {self.mutation_rate}")
        if self.restarts < 1:
            raise ValueError(f"restarts must be >= 1, got {self.restarts}")


def normalise(population: np.ndarray) -> np.ndarray:
    """Scale each row to sum to one; an all-zero row becomes uniform weights."""
    population = np.asarray(population, dtype=float)
    totals = population.sum(axis=-1, keepdims=True)
    uniform = np.full_like(population, 1.0 / population.shape[-1])
    return np.divide(population, totals, out=uniform, where=totals > 0)


def random_population(rng: np.random.Generator, size: int, n_members: int) -> np.ndarray:
    """``size`` chromosomes drawn uniformly on the simplex (Dirichlet(1)), shape ``(size, n_members)``."""
    return rng.dirichlet(np.ones(n_members), size=size)


def draw_contestants(rng: np.random.Generator, population_size: int, n: int, k: int) -> np.ndarray:
    """Indices of ``n`` tournaments of ``k`` distinct individuals each, shape ``(n, k)``, in draw order."""
    # The first k of a random permutation per row: a uniform k-subset in random order.
    return np.argsort(rng.random((n, population_size)), axis=1)[:, :k]


def tournament(fitness: np.ndarray, contestants: np.ndarray) -> np.ndarray:
    """Index of each tournament's winner (``contestants`` of shape ``(n, k)``): the fittest, the first drawn on ties."""
    best = np.argmax(fitness[contestants], axis=1)
    return contestants[np.arange(len(contestants)), best]


def tournament_select(fitness: np.ndarray, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` parents, each the winner of a k-tournament."""
    return tournament(fitness, draw_contestants(rng, len(fitness), n, k))


def average_crossover(parents_a: np.ndarray, parents_b: np.ndarray) -> np.ndarray:
    """Children as the gene-wise mean of two parents, renormalised (against rounding drift) to sum to one."""
    return normalise((np.asarray(parents_a, float) + np.asarray(parents_b, float)) / 2)


def crossover(parents_a: np.ndarray, parents_b: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Children of pairs of parents ``(size, members)``: the :func:`average_crossover` child with
    probability ``rate`` per pair (one uniform draw each), else a copy of ``parents_a``'s row."""
    parents_a = np.asarray(parents_a, dtype=float)
    crossed = rng.random(len(parents_a)) < rate
    return np.where(crossed[:, None], average_crossover(parents_a, parents_b), parents_a)


def mutate(
    population: np.ndarray, rate: float, rng: np.random.Generator, *, renormalise: bool = True
) -> np.ndarray:
    """Single-gene mutation of a copy of ``population`` ``(size, members)``.

    With probability ``rate`` a chromosome gets one random gene set to a fresh
    uniform value in [0, 1), then (``renormalise``, as the GA always does) is
    rescaled to sum to one.
    """
    mutated = np.array(population, dtype=float)
    size, n_members = mutated.shape
    # All three draws happen whatever the rate, so the random stream does not depend on it.
    hit = rng.random(size) < rate
    genes = rng.integers(0, n_members, size=size)
    values = rng.random(size)
    rows = np.flatnonzero(hit)
    mutated[rows, genes[rows]] = values[rows]
    if renormalise:
        mutated[rows] = normalise(mutated[rows])
    return mutated


def population_fitness(
    population: np.ndarray, probabilities: np.ndarray, y_true: np.ndarray, threshold: float = 0.5
) -> np.ndarray:
    """Weighted F1 of every chromosome's weighted-average ensemble, shape ``(size,)``.

    ``population`` is ``(size, members)`` with rows summing to one,
    ``probabilities`` ``(members, samples)`` (:func:`stack_probabilities`) and
    ``y_true`` 0/1. Equal, row by row, to scikit-learn's
    ``f1_score(y_true, population @ probabilities > threshold, average="weighted")``.
    """
    positive = np.asarray(y_true).astype(bool)
    predicted = (np.asarray(population, float) @ probabilities) > threshold  # (size, samples)
    n_pos = np.count_nonzero(positive)
    tp = np.count_nonzero(predicted & positive, axis=1)
    fp = np.count_nonzero(predicted, axis=1) - tp
    fn = n_pos - tp
    tn = (len(positive) - n_pos) - fp
    cm = np.stack([np.stack([tn, fp], axis=-1), np.stack([fn, tp], axis=-1)], axis=-2)  # (size, 2, 2)
    return per_class_scores(cm)["weighted_f1"]


def best_index(population: np.ndarray, fitness: np.ndarray) -> int:
    """Index of the fittest chromosome; ties go to the lowest weight variance, then the first."""
    candidates = np.flatnonzero(fitness == fitness.max())
    variances = population[candidates].var(axis=1)
    return int(candidates[np.argmin(variances)])


# ---------------------------------------------------------------------------
# Genetic algorithm: the search


@dataclass
class GAResult:
    """Outcome of :func:`genetic_weights`.

    Attributes
    ----------
    weights, fitness
        The best chromosome (one weight per member, summing to one) and its validation weighted F1.
    history
        ``history[r][g]``: best fitness of restart ``r`` after ``g`` generations (``g = 0``: the initial population).
    restart_fitness, restart_weights
        Final best fitness and chromosome of each restart.
    best_restart
        Which restart ``weights`` comes from.
    config
        The settings used.
    """

    weights: np.ndarray
    fitness: float
    history: list[list[float]]
    restart_fitness: list[float]
    restart_weights: list[np.ndarray] = field(default_factory=list)
    best_restart: int = 0
    config: GAConfig = field(default_factory=GAConfig)

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python summary for a metrics file (the per-generation history left out)."""
        return {
            "weights": [float(w) for w in self.weights],
            "fitness": float(self.fitness),
            "restart_fitness": [float(f) for f in self.restart_fitness],
            "best_restart": int(self.best_restart),
            "config": asdict(self.config),
        }


def genetic_weights(
    val_probabilities: Sequence[np.ndarray],
    y_val: Sequence[int] | np.ndarray,
    config: GAConfig | None = None,
    seed: int = 0,
) -> GAResult:
    """Learn ensemble weights on the validation set with the report's genetic algorithm.

    Parameters
    ----------
    val_probabilities
        Each member's positive-class probabilities on the validation set.
    y_val
        Validation labels, 0 (HEM) or 1 (ALL).
    config
        Algorithm settings; ``None`` means ``GAConfig()``.
    seed
        Seed of all random choices; the same seed gives the same result.

    Returns
    -------
    GAResult
        The chromosome with the best validation weighted F1 over all restarts
        (ties: lower weight variance, then the earlier restart), with the
        convergence history. The module docstring describes the algorithm.
    """
    config = config or GAConfig()
    probabilities = stack_probabilities(val_probabilities)
    y = np.asarray(y_val)
    if y.ndim != 1 or len(y) != probabilities.shape[1]:
        raise ValueError(f"y_val must have shape ({probabilities.shape[1]},), got {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_val must hold labels 0 and 1")
    y = y.astype(np.int64)
    n_members = len(probabilities)

    def fitness_of(population: np.ndarray) -> np.ndarray:
        return population_fitness(population, probabilities, y, config.threshold)

    history: list[list[float]] = []
    finals: list[np.ndarray] = []
    final_fitness: list[float] = []
    for stream in np.random.SeedSequence(seed).spawn(config.restarts):
        rng = np.random.default_rng(stream)
        population = random_population(rng, config.population_size, n_members)
        fitness = fitness_of(population)
        best = best_index(population, fitness)
        trace = [float(fitness[best])]
        n_children = config.population_size - 1
        for _ in range(config.generations):
            mothers = tournament_select(fitness, config.tournament_size, n_children, rng)
            fathers = tournament_select(fitness, config.tournament_size, n_children, rng)
            children = crossover(population[mothers], population[fathers], config.crossover_rate, rng)
            children = mutate(children, config.mutation_rate, rng)
            # Elitism: the best individual goes on unchanged, in first place.
            population = np.vstack([population[best], children])
            fitness = np.concatenate([fitness[[best]], fitness_of(children)])
            best = best_index(population, fitness)
            trace.append(float(fitness[best]))
        history.append(trace)
        finals.append(population[best].copy())
        final_fitness.append(float(fitness[best]))

    winner = best_index(np.stack(finals), np.asarray(final_fitness))
    return GAResult(
        weights=finals[winner],
        fitness=final_fitness[winner],
        history=history,
        restart_fitness=final_fitness,
        restart_weights=finals,
        best_restart=winner,
        config=config,
    )


def ga_convergence_figure(
    result: GAResult, title: str = "Genetic algorithm: best validation weighted F1"
) -> plt.Figure:
    """Best validation weighted F1 per generation, one line per restart; the kept restart is bold."""
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    for restart, trace in enumerate(result.history):
        kept = restart == result.best_restart
        ax.plot(
            np.arange(len(trace)),
            trace,
            linewidth=2.2 if kept else 1.0,
            alpha=1.0 if kept else 0.6,
            label=f"restart {restart}" + (" (kept)" if kept else ""),
        )
    ax.set_xlabel("generation")
    ax.set_ylabel("best weighted F1 (validation)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Error analysis

_RESERVED = ("y_true", "n_wrong")


def error_analysis(
    y_true: Sequence[int] | np.ndarray,
    predictions: Mapping[str, Sequence[int] | np.ndarray],
    index: Sequence[Any] | pd.Index | None = None,
) -> pd.DataFrame:
    """Which models get each sample right, for the report's error analysis.

    Parameters
    ----------
    y_true
        True labels.
    predictions
        Model name to its predicted labels (not probabilities: see
        :func:`cytobook.evaluation.predict_labels`).
    index
        Optional sample identifiers; default ``0 .. n-1``.

    Returns
    -------
    pandas.DataFrame
        One row per sample: ``y_true``, one boolean column per model (right
        or not) and ``n_wrong``; the model names in ``table.attrs["models"]``.
    """
    y = np.asarray(y_true)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"y_true must be a non-empty 1-D array, got shape {y.shape}")
    if not predictions:
        raise ValueError("error_analysis needs at least one model's predictions")
    clashes = [name for name in predictions if name in _RESERVED]
    if clashes:
        raise ValueError(f"model names {clashes} clash with the columns {list(_RESERVED)}")
    columns: dict[str, Any] = {"y_true": y}
    for name, labels in predictions.items():
        labels = np.asarray(labels)
        if labels.shape != y.shape:
            raise ValueError(f"{name!r}: expected {len(y)} predicted labels, got shape {labels.shape}")
        if labels.dtype.kind == "f" and not np.all(np.mod(labels, 1) == 0):
            raise ValueError(f"{name!r}: expected predicted labels, got probabilities (threshold them first)")
        columns[name] = labels == y
    table = pd.DataFrame(columns, index=index)
    models = list(predictions)
    table["n_wrong"] = (~table[models]).sum(axis=1).astype(int)
    table.attrs["models"] = models
    return table


def _models(table: pd.DataFrame) -> list[str]:
    models = table.attrs.get("models")
    if models:
        return list(models)
    # attrs can be lost by some pandas operations: fall back on the boolean columns.
    return [c for c in table.columns if table[c].dtype == bool]


def misclassified_by_all(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of an :func:`error_analysis` table that every model gets wrong."""
    return table[table["n_wrong"] == len(_models(table))]


def misclassified_by_k(table: pd.DataFrame) -> pd.Series:
    """Number of samples misclassified by exactly ``k`` models, for ``k = 0 .. models``."""
    counts = table["n_wrong"].value_counts().reindex(range(len(_models(table)) + 1), fill_value=0)
    counts.index.name = "n_wrong"
    return counts.rename("samples").astype(int)


def only_one_right(table: pd.DataFrame) -> pd.DataFrame:
    """Rows that exactly one model gets right, with that model's name in column ``only_right``."""
    models = _models(table)
    rows = table[table["n_wrong"] == len(models) - 1].copy()
    rows["only_right"] = rows[models].idxmax(axis=1) if len(rows) else pd.Series(dtype=object)
    return rows


def error_summary(table: pd.DataFrame) -> pd.Series:
    """The report's error-analysis counts from an :func:`error_analysis` table, as a Series named ``samples``.

    ``"misclassified by all"``, ``"misclassified by exactly one"``, then
    ``"only right: <model>"`` for each model in order (possibly 0).
    """
    models = _models(table)
    by_k = misclassified_by_k(table)
    alone = only_one_right(table)["only_right"].value_counts().reindex(models, fill_value=0)
    counts = {"misclassified by all": by_k[len(models)], "misclassified by exactly one": by_k[1]}
    counts |= {f"only right: {model}": alone[model] for model in models}
    return pd.Series(counts, name="samples").astype(int)


# ---------------------------------------------------------------------------
# Members' signal and the ensembles' gain

#: Names of the ensembles in a results mapping, as notebook 07 calls them.
ENSEMBLES = ("average ensemble", "GA-weighted ensemble")


@dataclass
class Ensembles:
    """Both of the report's ensembles over one set of members, scored on the test set.

    ``results`` holds the :func:`cytobook.evaluation.binary_report` of each
    member, then of each of :data:`ENSEMBLES`; ``test_probabilities`` their
    positive-class test probabilities; ``ga`` the genetic algorithm's result.
    """

    results: dict[str, dict[str, Any]]
    test_probabilities: dict[str, np.ndarray]
    ga: GAResult


def build_ensembles(predictions: Mapping[str, Mapping[str, np.ndarray]], config: GAConfig, seed: int = 0) -> Ensembles:
    """The average and the GA-weighted ensemble of ``predictions``' members, as report 1 builds them.

    ``predictions`` maps each member to its saved ``p_val``, ``y_val``,
    ``p_test`` and ``y_test`` (:func:`cytobook.results.load_predictions`);
    a ``ValueError`` says when the members' labels differ.
    """
    first = next(iter(predictions.values()))
    for name, arrays in predictions.items():
        if not (np.array_equal(arrays["y_val"], first["y_val"]) and np.array_equal(arrays["y_test"], first["y_test"])):
            raise ValueError(f"member {name!r} was validated or tested on other images than the first member")
    p_test = {name: np.asarray(arrays["p_test"], dtype=float).ravel() for name, arrays in predictions.items()}
    ga = genetic_weights([arrays["p_val"] for arrays in predictions.values()], first["y_val"], config=config, seed=seed)
    p_test[ENSEMBLES[0]] = average_ensemble(list(p_test.values()))
    p_test[ENSEMBLES[1]] = weighted_ensemble([p_test[name] for name in predictions], ga.weights)
    results = {name: binary_report(first["y_test"], p) for name, p in p_test.items()}
    return Ensembles(results, p_test, ga)


def member_signal(
    y_true: Sequence[int] | np.ndarray,
    probabilities: Mapping[str, np.ndarray],
    threshold: float = 0.5,
    auc_margin: float = 0.05,
) -> pd.DataFrame:
    """How much signal each member has for an ensemble to combine.

    Parameters
    ----------
    y_true
        Labels 0 (HEM) / 1 (ALL) of the samples the members predicted.
    probabilities
        Member name to its positive-class (ALL) probabilities.
    threshold
        A member predicts ALL where its probability exceeds it.
    auc_margin
        How close to 0.5 a ROC AUC counts as chance.

    Returns
    -------
    pandas.DataFrame
        One row per member (index ``member``): ``predicted_classes`` (1 or 2),
        ``share_predicted_ALL``, ``roc_auc`` (NaN when ``y_true`` holds one
        class), ``near_chance`` (AUC within ``auc_margin`` of 0.5) and
        ``degenerate`` (one class predicted for every sample, or near chance).
    """
    y = np.asarray(y_true)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise ValueError(f"y_true must be a 1-D array of labels 0 and 1, got shape {y.shape}")
    if not probabilities:
        raise ValueError("member_signal needs at least one member")
    rows = {}
    for name, p in probabilities.items():
        p = stack_probabilities([p])[0]
        if len(p) != len(y):
            raise ValueError(f"{name!r}: expected {len(y)} probabilities, got {len(p)}")
        predicted = predict_labels(p, threshold)
        rows[name] = {
            "predicted_classes": len(np.unique(predicted)),
            "share_predicted_ALL": float(predicted.mean()),
            "roc_auc": float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else np.nan,
        }
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("member")
    table["near_chance"] = (table["roc_auc"] - 0.5).abs() <= auc_margin  # NaN compares False
    table["degenerate"] = (table["predicted_classes"] == 1) | table["near_chance"]
    return table


def ensemble_gain(
    results: Mapping[str, Mapping[str, Any]],
    members: Sequence[str],
    ensembles: Sequence[str] = ENSEMBLES,
    *,
    chosen_on: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Each ensemble's weighted F1 against its best member's.

    Parameters
    ----------
    results
        Mappings with a ``weighted_f1`` (e.g. :func:`cytobook.evaluation.binary_report`) by name.
    members, ensembles
        Names in ``results``; ties for the best member go to the first.
    chosen_on
        The members' results on the validation set, if given: the member to
        beat is then the one a user would pick, the best on validation. The
        best on ``results`` (the test set) is known only after the fact, and
        beating it asks more of an ensemble than choosing a member can give.

    Returns
    -------
    pandas.DataFrame
        One row per ensemble (index ``ensemble``): ``weighted_f1``,
        ``best_member``, ``best_member_weighted_f1`` (on ``results``),
        ``chosen_on`` (``"validation"`` or ``"test"``), ``gain`` and
        ``beats_best_member`` (``gain > 0``).
    """
    members = list(members)
    if not members:
        raise ValueError("ensemble_gain needs at least one member")
    missing = [name for name in [*members, *ensembles] if name not in results]
    missing += [name for name in members if chosen_on is not None and name not in chosen_on]
    if missing:
        raise ValueError(f"no results for {missing}; found {list(results)}"
                         + ("" if chosen_on is None else f" and, on validation, {list(chosen_on)}"))
    best = max(members, key=lambda name: (results if chosen_on is None else chosen_on)[name]["weighted_f1"])
    best_f1 = float(results[best]["weighted_f1"])
    table = pd.DataFrame(
        {"weighted_f1": [float(results[name]["weighted_f1"]) for name in ensembles]},
        index=pd.Index(list(ensembles), name="ensemble"),
    )
    table["best_member"] = best
    table["best_member_weighted_f1"] = best_f1
    table["chosen_on"] = "test" if chosen_on is None else "validation"
    table["gain"] = table["weighted_f1"] - best_f1
    table["beats_best_member"] = table["gain"] > 0
    return table


def gain_interval(
    y_true: np.ndarray,
    p_ensemble: np.ndarray,
    p_member: np.ndarray,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Paired bootstrap interval of an ensemble's weighted-F1 gain over a member on the same test cells.

    The cells are resampled with replacement, both models scored on each
    resample (labels at probability 0.5), and the ``level`` percentile
    interval of the differences returned: an interval that holds zero says
    the test set is too small to tell the two apart. Cells, not subjects, are
    resampled, so with few subjects the interval is too narrow.
    """
    y = np.asarray(y_true).astype(int)
    ours, theirs = (predict_labels(stack_probabilities([p])[0]) for p in (p_ensemble, p_member))
    if not len(y) == len(ours) == len(theirs):
        raise ValueError(f"expected as many probabilities as labels ({len(y)}), got {len(ours)} and {len(theirs)}")
    rows = np.random.default_rng(seed).integers(0, len(y), (resamples, len(y)))
    gains = _weighted_f1(y[rows], ours[rows]) - _weighted_f1(y[rows], theirs[rows])
    low, high = np.percentile(gains, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def _weighted_f1(y: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Support-weighted F1 of labels 0 and 1 along the last axis (one score per row), as binary_report's."""
    total = np.zeros(y.shape[:-1])
    for label in (0, 1):
        true, guessed = y == label, predicted == label
        hits = (true & guessed).sum(axis=-1)
        denominator = true.sum(axis=-1) + guessed.sum(axis=-1)
        f1 = np.divide(2 * hits, denominator, out=np.zeros(total.shape), where=denominator > 0)
        total += f1 * true.sum(axis=-1)
    return total / y.shape[-1]


def validated_gain(
    predictions: Mapping[str, Mapping[str, np.ndarray]],
    test_probabilities: Mapping[str, np.ndarray],
    ensembles: Sequence[str],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`ensemble_gain` against the member chosen on validation, with its :func:`gain_interval`.

    Parameters
    ----------
    predictions
        Each member's saved ``p_val``, ``y_val``, ``p_test`` and ``y_test``
        (:func:`cytobook.results.load_predictions`).
    test_probabilities
        Test probabilities of every ensemble in ``ensembles`` (members may be there too).
    resamples, seed
        Of the paired bootstrap.

    Returns
    -------
    pandas.DataFrame
        :func:`ensemble_gain`'s columns, plus ``gain low`` and ``gain high``,
        the 95 % interval of the gain over the test cells.
    """
    y_test = next(iter(predictions.values()))["y_test"]
    test = {name: binary_report(arrays["y_test"], arrays["p_test"]) for name, arrays in predictions.items()}
    test |= {name: binary_report(y_test, test_probabilities[name]) for name in ensembles}
    validation = {name: binary_report(arrays["y_val"], arrays["p_val"]) for name, arrays in predictions.items()}
    table = ensemble_gain(test, list(predictions), ensembles, chosen_on=validation)
    intervals = [gain_interval(y_test, test_probabilities[name], predictions[table.loc[name, "best_member"]]["p_test"],
                               resamples=resamples, seed=seed) for name in table.index]
    table["gain low"], table["gain high"] = zip(*intervals)
    return table

"""Report 1's ensembles: average, weighted average with genetic-algorithm weights, error analysis.

The report combines its best networks by averaging their positive-class (ALL)
probabilities, plainly (:func:`average_ensemble`) or with weights
(:func:`weighted_ensemble`) learnt on the validation set by a genetic
algorithm (:func:`genetic_weights`) that maximises the weighted F1 score of
the weighted average at threshold 0.5.

The genetic algorithm, as the report describes it:

* a chromosome is a real-coded weight vector, one non-negative gene per
  member, summing to one; the initial population is drawn uniformly on that
  simplex (Dirichlet(1)), see :func:`random_population`;
* k-tournament selection: k distinct individuals are drawn at random and the
  fittest wins (:func:`draw_contestants`, :func:`tournament`,
  :func:`tournament_select`);
* average crossover: the child is the mean of its two parents, renormalised
  to sum to one (:func:`average_crossover`);
* single-gene mutation: with probability ``mutation_rate`` one randomly chosen
  gene is replaced by a new uniform value in [0, 1), then the chromosome is
  renormalised (:func:`mutate`);
* a fixed population size and a fixed number of generations, and several
  independent restarts, keeping the best chromosome.

Our choices, where the report's text does not fix them:

* generational replacement with elitism of one: each generation keeps its
  best individual unchanged and fills the rest of the population with
  children, so the best fitness never decreases;
* ties in fitness (weighted F1 is a step function of the weights, so ties are
  common) go to the chromosome with the lower variance of weights, i.e. the
  one closest to the plain average, then to the first one found; this rule
  picks the elite of each generation and the winner across restarts;
* each restart draws from its own random stream spawned from ``seed``
  (:class:`numpy.random.SeedSequence`), so the whole search is deterministic
  for a seed and restart ``r`` does not depend on how many restarts follow it.

Fitness is evaluated for a whole population at once (:func:`population_fitness`):
one matrix product gives every candidate ensemble's probabilities, and the
weighted F1 follows from confusion counts, without a per-individual loop.

An ensemble can only combine signal its members have. :func:`degenerate_members`
names the members that have none (one class predicted for every sample, or a
ROC AUC within a margin of chance), and :func:`ensemble_verdict` says in plain
lines whether the ensembles beat their best member, and why not: degenerate
members (and, when the run knows it, that they started from random weights
because no ImageNet weights were cached) or, when every member is informative,
how their errors overlap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .evaluation import binary_report, per_class_scores, predict_labels

if TYPE_CHECKING:
    from .weights import WeightFile

# ---------------------------------------------------------------------------
# Ensembles


def stack_probabilities(probabilities: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Members' positive-class probabilities as one ``(members, samples)`` array.

    Each member gives shape ``(n,)`` or ``(n, 1)`` (Keras' sigmoid output);
    for a two-column softmax pass ``proba[:, 1]``.

    Raises
    ------
    ValueError
        With no member, members of different lengths or other shapes, or
        non-finite values.
    """
    arrays = [np.asarray(p, dtype=float) for p in probabilities]
    if not arrays:
        raise ValueError("an ensemble needs at least one member")
    flat = []
    for index, array in enumerate(arrays):
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise ValueError(
                f"member {index}: expected positive-class probabilities of shape (n,) or (n, 1), got {array.shape}"
            )
        flat.append(array)
    lengths = {len(array) for array in flat}
    if len(lengths) != 1:
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

    Parameters
    ----------
    probabilities
        One array of positive-class probabilities per member.
    weights
        One non-negative weight per member; divided by their sum, so the
        result stays a probability whatever the scale of the weights.
    """
    stacked = stack_probabilities(probabilities)
    w = np.asarray(weights, dtype=float)
    if w.shape != (len(stacked),):
        raise ValueError(f"expected {len(stacked)} weights, one per member, got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {w.tolist()}")
    # Same product as population_fitness, so a GA's fitness reproduces exactly here.
    return (w / w.sum()) @ stacked


# ---------------------------------------------------------------------------
# Genetic algorithm: operators


@dataclass
class GAConfig:
    """Settings of :func:`genetic_weights`.

    Attributes
    ----------
    population_size
        Chromosomes per generation, constant across generations (>= 2).
    generations
        Generations after the initial population (>= 0).
    tournament_size
        Contestants per tournament, ``1 .. population_size``.
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
    """Winner of each tournament: the fittest contestant, the first drawn on ties.

    Parameters
    ----------
    fitness
        Fitness of every individual, shape ``(population,)``.
    contestants
        Indices drawn by :func:`draw_contestants`, shape ``(n, k)``.

    Returns
    -------
    numpy.ndarray
        Index of each winner, shape ``(n,)``.
    """
    best = np.argmax(fitness[contestants], axis=1)
    return contestants[np.arange(len(contestants)), best]


def tournament_select(fitness: np.ndarray, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` parents, each the winner of a k-tournament."""
    return tournament(fitness, draw_contestants(rng, len(fitness), n, k))


def average_crossover(parents_a: np.ndarray, parents_b: np.ndarray) -> np.ndarray:
    """Children as the gene-wise mean of two parents, renormalised to sum to one.

    The mean of two points of the simplex is already on it; renormalising
    removes rounding drift and accepts parents not yet normalised.
    """
    return normalise((np.asarray(parents_a, float) + np.asarray(parents_b, float)) / 2)


def mutate(
    population: np.ndarray, rate: float, rng: np.random.Generator, *, renormalise: bool = True
) -> np.ndarray:
    """Single-gene mutation: with probability ``rate`` a chromosome gets one gene replaced.

    Parameters
    ----------
    population
        Chromosomes, shape ``(size, members)``; not modified.
    rate
        Probability, per chromosome, of a mutation.
    rng
        Random generator.
    renormalise
        Rescale the chromosomes to sum to one afterwards (the GA always
        does; ``False`` shows the raw replacement, for tests).

    Returns
    -------
    numpy.ndarray
        A new array: each mutated chromosome has one randomly chosen gene set
        to a fresh uniform value in [0, 1).
    """
    mutated = np.array(population, dtype=float)
    size, n_members = mutated.shape
    # All three draws happen whatever the rate, so the random stream does not depend on it.
    hit = rng.random(size) < rate
    genes = rng.integers(0, n_members, size=size)
    values = rng.random(size)
    rows = np.flatnonzero(hit)
    mutated[rows, genes[rows]] = values[rows]
    return normalise(mutated) if renormalise else mutated


def population_fitness(
    population: np.ndarray, probabilities: np.ndarray, y_true: np.ndarray, threshold: float = 0.5
) -> np.ndarray:
    """Weighted F1 of every chromosome's weighted-average ensemble, vectorised.

    Parameters
    ----------
    population
        Weight vectors, shape ``(size, members)``, rows summing to one.
    probabilities
        Members' positive-class probabilities, shape ``(members, samples)``
        (see :func:`stack_probabilities`).
    y_true
        Labels 0/1, shape ``(samples,)``.
    threshold
        Label 1 is predicted where the ensemble's probability exceeds it.

    Returns
    -------
    numpy.ndarray
        Shape ``(size,)``; equal to scikit-learn's
        ``f1_score(y_true, predictions, average="weighted")`` for each row.
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
    weights
        The best chromosome: one weight per member, non-negative, summing to one.
    fitness
        Its validation weighted F1.
    history
        Best fitness per generation for each restart: ``history[r][g]`` is
        the best of restart ``r`` after ``g`` generations (``g = 0`` is the
        initial population), so each list has ``generations + 1`` values.
    restart_fitness
        Final best fitness of each restart.
    restart_weights
        Final best chromosome of each restart.
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
        convergence history.

    Notes
    -----
    Each generation keeps its best individual (elitism) and breeds
    ``population_size - 1`` children: two parents by k-tournament, average
    crossover, single-gene mutation. See the module docstring for the full
    description and the choices that are ours.
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
            children = mutate(average_crossover(population[mothers], population[fathers]), config.mutation_rate, rng)
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
        Model name to its predicted labels (threshold probabilities first,
        e.g. with :func:`cytobook.evaluation.predict_labels`).
    index
        Optional sample identifiers (file names, say); default ``0 .. n-1``.

    Returns
    -------
    pandas.DataFrame
        One row per sample: ``y_true``, one boolean column per model (``True``
        where it is right) and ``n_wrong``, the number of models that
        misclassify the sample. The model names are kept in
        ``table.attrs["models"]``.
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


# ---------------------------------------------------------------------------
# Degenerate members and the verdict

#: Names of the ensembles in a results mapping, as notebook 07 calls them.
ENSEMBLES = ("average ensemble", "GA-weighted ensemble")


def degenerate_members(
    y_true: Sequence[int] | np.ndarray,
    probabilities: Mapping[str, np.ndarray],
    *,
    threshold: float = 0.5,
    auc_margin: float = 0.05,
    class_names: Sequence[str] = ("HEM", "ALL"),
    unit: str = "test image",
) -> dict[str, str]:
    """Members that carry no signal an ensemble could combine, each with the reason.

    A member is *degenerate* when it predicts the same class for every sample
    at ``threshold``, or when its ROC AUC is within ``auc_margin`` of 0.5, i.e.
    it ranks the samples about as well as a coin. (With a single class in
    ``y_true`` the AUC is undefined and only the first test applies.)

    Parameters
    ----------
    y_true
        Labels 0/1 of the samples the members predicted.
    probabilities
        Member name to its positive-class probabilities.
    threshold
        A member predicts label 1 where its probability exceeds it.
    auc_margin
        How close to 0.5 a ROC AUC counts as chance.
    class_names
        Names of labels 0 and 1, for the reasons.
    unit
        What one sample is, for the reasons ("test image", "test cell").

    Returns
    -------
    dict
        Degenerate member to a reason such as ``"predicts HEM for every test
        image; ROC AUC 0.539, within 0.05 of chance"``, in the order of
        ``probabilities``; informative members are absent.
    """
    y = np.asarray(y_true).astype(int)
    found: dict[str, str] = {}
    for name, p in probabilities.items():
        p = stack_probabilities([p])[0]
        if len(p) != len(y):
            raise ValueError(f"{name!r}: expected {len(y)} probabilities, got {len(p)}")
        labels = np.unique(predict_labels(p, threshold))
        auc = binary_report(y, p, threshold=threshold, class_names=class_names)["roc_auc"]
        reasons = []
        if len(labels) == 1:
            reasons.append(f"predicts {class_names[int(labels[0])]} for every {unit}")
        if auc is not None and abs(auc - 0.5) <= auc_margin:
            reasons.append(f"ROC AUC {auc:.3f}, within {auc_margin:g} of chance")
        elif auc is not None and reasons:
            reasons.append(f"ROC AUC {auc:.3f}")
        if reasons:
            found[name] = "; ".join(reasons)
    return found


def _names(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def missing_weights_advice(files: Sequence[WeightFile]) -> str:
    """One sentence saying which ImageNet weight files to download, and where to put them."""
    from .weights import keras_home

    unique = list({f.file_name: f for f in files}.values())
    listed = _names([f"{f.file_name} ({f.url})" for f in unique])
    return (f"To start them from ImageNet, download {listed} on a machine with a network and put "
            f"{'it' if len(unique) == 1 else 'them'} in {keras_home() / 'models'} (or in the models/ folder "
            "of a directory named by $KERAS_HOME), then run the chapter again.")


def ensemble_verdict(
    y_true: Sequence[int] | np.ndarray,
    probabilities: Mapping[str, np.ndarray],
    results: Mapping[str, Mapping[str, Any]],
    *,
    ga_weights: Mapping[str, float] | None = None,
    random_init: Mapping[str, WeightFile | None] | None = None,
    training: str | None = None,
    ensembles: Sequence[str] = ENSEMBLES,
    threshold: float = 0.5,
    auc_margin: float = 0.05,
    unit: str = "test image",
    class_names: Sequence[str] = ("HEM", "ALL"),
) -> list[str]:
    """Whether the ensembles beat their best member, and why not, in plain lines.

    Parameters
    ----------
    y_true
        Labels of the samples scored (the test set).
    probabilities
        Member name to its positive-class probabilities on those samples.
    results
        :func:`cytobook.evaluation.binary_report` of every member and of
        each of ``ensembles``, by name.
    ga_weights
        The genetic algorithm's weight of each member, if it ran.
    random_init
        Members that started from random weights because their ImageNet
        weights were not cached, each with the :class:`~cytobook.weights.WeightFile`
        it lacked (``None`` if unknown); see
        :func:`cytobook.results.random_initialised`.
    training
        How the members were trained, e.g. ``"64 px images and 1 fine-tuning
        epoch"``, for the sentence about random weights.
    ensembles
        Names of the ensembles in ``results``.
    threshold, auc_margin
        See :func:`degenerate_members`.
    unit
        What one sample is.
    class_names
        Names of labels 0 and 1.

    Returns
    -------
    list of str
        One line per ensemble (its weighted F1 against the best member's),
        then, if some members are degenerate, the lines naming them and what
        they do to each ensemble and where they come from; the general
        explanation from overlapping errors is given only when every member
        carries signal (or among the informative ones, when two or more are).
    """
    members = list(probabilities)
    y = np.asarray(y_true).astype(int)
    random_init = dict(random_init or {})
    lines = []
    best = max(members, key=lambda name: results[name]["weighted_f1"])
    best_f1 = results[best]["weighted_f1"]
    present = [name for name in ensembles if name in results]
    for name in present:
        gain = results[name]["weighted_f1"] - best_f1
        verdict = "improves on" if gain > 0 else "does not improve on"
        lines.append(f"{name}: weighted F1 {results[name]['weighted_f1']:.4f}, {verdict} the best member "
                     f"({best}, {best_f1:.4f}) by {gain:+.4f}")
    improved = any(results[name]["weighted_f1"] > best_f1 for name in present)

    degenerate = degenerate_members(y, probabilities, threshold=threshold, auc_margin=auc_margin,
                                    class_names=class_names, unit=unit)
    informative = [name for name in members if name not in degenerate]
    if degenerate:
        plural = len(degenerate) > 1
        # Members at chance carry no signal at all; a member on one side of the threshold may still rank the
        # samples, but an average at the threshold cannot use that: it only pulls the ensemble to that side.
        lopsided = [name for name, reason in degenerate.items() if "of chance" not in reason]
        at_chance = [name for name in degenerate if name not in lopsided]
        if not lopsided:
            why = f"{'Such members carry' if plural else 'Such a member carries'} no signal to combine."
        else:
            why = (f"{_names(at_chance)} {'carry' if len(at_chance) > 1 else 'carries'} no signal to combine; "
                   if at_chance else "")
            why += (f"{_names(lopsided)} never {'cross' if len(lopsided) > 1 else 'crosses'} the threshold, so "
                    "whatever ranking " + ("they have" if len(lopsided) > 1 else "it has")
                    + " only pulls an average to one side instead of adding signal to combine.")
        lines.append(
            f"Degenerate member{'s' if plural else ''}: "
            + "; ".join(f"{name} ({reason})" for name, reason in degenerate.items())
            + f". {why}")
        stacked = stack_probabilities([probabilities[name] for name in degenerate])
        spread = float(stacked.std(axis=1).max())
        flat = spread < 0.05
        k, n = len(degenerate), len(members)
        if informative and "average ensemble" in results:
            average_f1 = results["average ensemble"]["weighted_f1"]
            best_informative = max(informative, key=lambda name: results[name]["weighted_f1"])
            output = "near-constant output" if flat else "output"
            lines.append(
                f"The plain average gives {'them' if plural else 'it'} {k} of its {n} equal shares, so it is "
                f"dragged toward {'their' if plural else 'its'} {output} (mean P({class_names[1]}) "
                f"{float(stacked.mean()):.3f}" + (f", standard deviation at most {spread:.3f} across {unit}s" if flat else "")
                + f"): weighted F1 {average_f1:.4f}"
                + f" against {results[best_informative]['weighted_f1']:.4f} for {best_informative}.")
        if informative and ga_weights is not None:
            total = float(sum(ga_weights.get(name, 0.0) for name in degenerate))
            if total <= 0.1:
                lines.append(f"The GA rightly gives {'them' if plural else 'it'} little weight ({total:.3f} in all, "
                             f"against {k}/{n} in the plain average).")
            else:
                lines.append(
                    f"The GA gives {'them' if plural else 'it'} {total:.3f} of the weight in all (against {k}/{n} in "
                    "the plain average)" + (
                        ": an output that hardly varies from one sample to the next only shifts where the weighted "
                        "average crosses the threshold, it adds no ranking information." if flat else "."))
        random_degenerate = [name for name in degenerate if name in random_init]
        if random_degenerate:
            one = len(random_degenerate) == 1
            how = f", with {training}," if training else ""
            lines.append(
                f"{_names(random_degenerate)} {'is' if one else 'are'} degenerate because {'it' if one else 'they'} "
                f"started from RANDOM weights: no ImageNet weights were cached when {'its notebook' if one else 'their notebooks'} "
                f"ran (this profile allows that, with a WARNING). From random weights{how} "
                f"{'this deep base' if one else 'these deep bases'} learnt no usable signal, so this run cannot test "
                "what the report's ensembles gain.")
            files = [random_init[name] for name in random_degenerate if random_init[name] is not None]
            if files:
                lines.append(missing_weights_advice(files))
        other = [name for name in degenerate if name not in random_init]
        if other:
            one = len(other) == 1
            lines.append(f"{_names(other)} learnt no usable signal in this run although {'it was' if one else 'they were'} "
                         f"not held back by missing ImageNet weights: see the learning curves in "
                         f"{'its training notebook' if one else 'their training notebooks'}.")
    if improved:
        return lines
    if degenerate and len(informative) < 2:
        lines.append(
            f"Why not: only {informative[0]} is not degenerate, so there is nothing to combine; an ensemble can at "
            "best match it." if informative else
            "Why not: every member is degenerate, so there is no signal for an ensemble to combine.")
        return lines
    table = error_analysis(y, {name: predict_labels(probabilities[name], threshold) for name in informative})
    wrong_any = int((table["n_wrong"] > 0).sum())
    shared = len(misclassified_by_all(table))
    alone = len(only_one_right(table))
    among = f"among the {len(informative)} informative members, " if degenerate else ""
    lines.append(
        f"Why not: {among}of the {wrong_any} {unit}s some member gets wrong, {shared} are wrong for every member and "
        f"{alone} are right for one member only; an average can only fix {unit}s where the majority of the "
        "probability mass is right, and weights fitted on a small validation set need not transfer to the test set.")
    return lines


def degenerate_summary(degenerate: Sequence[str], random_init: Sequence[str] = ()) -> str | None:
    """One sentence for a results table: which members are degenerate, and why if known; ``None`` if none."""
    degenerate = list(degenerate)
    if not degenerate:
        return None
    plural = len(degenerate) > 1
    sentence = (f"{_names(degenerate)} {'are' if plural else 'is'} degenerate in this run (one class predicted for "
                f"every test image, or a ROC AUC close to chance): {'they carry' if plural else 'it carries'} no "
                "signal, so the ensemble rows cannot gain from " + ("them" if plural else "it"))
    random = [name for name in degenerate if name in set(random_init)]
    if random:
        sentence += (f"; {_names(random)} started from random weights because no ImageNet weights were cached "
                     "(notebook 07 names the files and where to put them)")
    return sentence + "."

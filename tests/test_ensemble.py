"""cytobook.ensemble: averages, the GA's operators and search, error analysis, members' signal and gain."""

from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from cytobook import ensemble as en
from cytobook import evaluation as ev


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def assert_on_simplex(weights: np.ndarray) -> None:
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-12)


def noisy_problem(n: int = 400, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Member 1 is perfect (0.9 / 0.1); members 0, 2, 3 are confident and right only 60 % of the time.

    Where the three noisy members all say the wrong class (one sample in
    about 15), the perfect member outvotes them only with a weight above
    0.53, so an ensemble with F1 = 1 must give it most of the weight.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    perfect = np.where(y == 1, 0.9, 0.1)
    noisy = [np.where(rng.random(n) < 0.6, y, 1 - y) * 0.9 + 0.05 for _ in range(3)]
    return [noisy[0], perfect, noisy[1], noisy[2]], y


# --- ensembles ------------------------------------------------------------------


def test_average_and_weighted_ensembles():
    a, b = np.array([0.2, 0.8, 0.6]), np.array([[0.4], [0.6], [0.0]])  # Keras' (n, 1) accepted
    np.testing.assert_allclose(en.average_ensemble([a, b]), [0.3, 0.7, 0.3])
    np.testing.assert_allclose(en.weighted_ensemble([a, b], [0.75, 0.25]), [0.25, 0.75, 0.45])
    # Weights are normalised, so their scale does not matter.
    np.testing.assert_allclose(en.weighted_ensemble([a, b], [3, 1]), en.weighted_ensemble([a, b], [0.75, 0.25]))
    np.testing.assert_allclose(en.weighted_ensemble([a, b], [1, 1]), en.average_ensemble([a, b]))


@pytest.mark.parametrize(
    ("probabilities", "weights", "message"),
    [
        ([np.ones(3), np.ones(4)], [0.5, 0.5], "different numbers"),
        ([np.ones((3, 2))], [1.0], "shape"),
        ([np.ones(3), np.ones(3)], [1.0], "2 weights"),
        ([np.ones(3), np.ones(3)], [1.0, -0.5], "non-negative"),
        ([np.ones(3), np.ones(3)], [0.0, 0.0], "not all zero"),
        ([], [], "at least one"),
    ],
)
def test_weighted_ensemble_rejects_bad_input(probabilities, weights, message):
    with pytest.raises(ValueError, match=message):
        en.weighted_ensemble(probabilities, weights)


# --- operators ------------------------------------------------------------------


def test_initial_population_is_on_the_simplex_and_spread_over_it():
    population = en.random_population(np.random.default_rng(0), 2000, 4)
    assert population.shape == (2000, 4)
    assert_on_simplex(population)
    # Dirichlet(1): each gene's mean is 1 / members.
    np.testing.assert_allclose(population.mean(axis=0), 0.25, atol=0.02)


def test_normalise_makes_rows_sum_to_one_and_zero_rows_uniform():
    out = en.normalise(np.array([[2.0, 2.0, 4.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.25, 0.25, 0.5], [1 / 3, 1 / 3, 1 / 3]])


def test_tournament_returns_the_fittest_of_each_draw():
    rng = np.random.default_rng(1)
    fitness = rng.random(20)
    contestants = en.draw_contestants(rng, 20, n=200, k=3)
    assert contestants.shape == (200, 3)
    assert all(len(set(row)) == 3 for row in contestants.tolist())  # distinct contestants
    winners = en.tournament(fitness, contestants)
    for row, winner in zip(contestants, winners):
        assert winner in row
        assert fitness[winner] == fitness[row].max()


def test_tournament_ties_go_to_the_first_drawn_and_full_tournament_is_argmax():
    fitness = np.array([0.5, 0.9, 0.9, 0.1])
    assert en.tournament(fitness, np.array([[2, 1, 0], [1, 2, 3]])).tolist() == [2, 1]
    winners = en.tournament_select(fitness, k=4, n=50, rng=np.random.default_rng(0))
    assert set(winners.tolist()) <= {1, 2}


def test_tournament_select_is_draw_then_tournament():
    fitness = np.random.default_rng(2).random(10)
    selected = en.tournament_select(fitness, 3, 7, np.random.default_rng(5))
    expected = en.tournament(fitness, en.draw_contestants(np.random.default_rng(5), 10, 7, 3))
    np.testing.assert_array_equal(selected, expected)


def test_average_crossover_is_the_mean_renormalised():
    a = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    b = np.array([[0.0, 0.0, 1.0], [0.4, 0.4, 0.2]])
    np.testing.assert_allclose(en.average_crossover(a, b), [[0.5, 0.0, 0.5], [0.3, 0.35, 0.35]])
    # Parents off the simplex still give children on it.
    children = en.average_crossover(np.array([[2.0, 0.0, 2.0]]), np.array([[0.0, 4.0, 0.0]]))
    np.testing.assert_allclose(children, [[0.25, 0.5, 0.25]])
    assert_on_simplex(children)


def test_mutation_replaces_exactly_one_gene_before_renormalising():
    rng = np.random.default_rng(3)
    population = en.random_population(rng, 500, 5)
    raw = en.mutate(population, 1.0, np.random.default_rng(4), renormalise=False)
    changed = (raw != population).sum(axis=1)
    assert np.all(changed == 1)
    assert np.all((raw >= 0) & (raw < 1))
    # The renormalised version is the raw one divided by its row sums.
    final = en.mutate(population, 1.0, np.random.default_rng(4))
    np.testing.assert_allclose(final, raw / raw.sum(axis=1, keepdims=True))
    assert_on_simplex(final)
    assert population is not raw and np.all(population.sum(axis=1) > 0)  # input untouched


def test_mutation_rate_controls_how_many_chromosomes_change():
    population = en.random_population(np.random.default_rng(0), 4000, 3)
    assert np.array_equal(en.mutate(population, 0.0, np.random.default_rng(1), renormalise=False), population)
    raw = en.mutate(population, 0.1, np.random.default_rng(1), renormalise=False)
    changed = (raw != population).sum(axis=1)
    assert set(changed.tolist()) == {0, 1}
    assert 0.08 < changed.mean() < 0.12
    assert_on_simplex(en.mutate(population, 0.1, np.random.default_rng(1)))


def test_crossover_rate_chooses_between_average_child_and_copy_of_first_parent():
    rng = np.random.default_rng(0)
    a, b = en.random_population(rng, 2000, 4), en.random_population(rng, 2000, 4)
    np.testing.assert_array_equal(en.crossover(a, b, 0.0, np.random.default_rng(1)), a)
    np.testing.assert_array_equal(en.crossover(a, b, 1.0, np.random.default_rng(1)), en.average_crossover(a, b))
    children = en.crossover(a, b, 0.7, np.random.default_rng(1))
    copied = np.all(children == a, axis=1)
    averaged = np.all(children == en.average_crossover(a, b), axis=1)
    assert np.all(copied ^ averaged)  # every child is one or the other
    assert 0.67 < averaged.mean() < 0.73
    # One draw per pair whatever the rate: the same pairs cross at a lower rate only if they crossed at a higher one.
    fewer = np.all(en.crossover(a, b, 0.3, np.random.default_rng(1)) == en.average_crossover(a, b), axis=1)
    assert np.all(averaged[fewer])


def test_mutation_leaves_unmutated_chromosomes_bit_for_bit():
    population = en.random_population(np.random.default_rng(0), 200, 3) * 3.0  # rows summing to 3
    mutated = en.mutate(population, 0.5, np.random.default_rng(2))
    untouched = np.all(mutated == population, axis=1)
    assert 0.3 < untouched.mean() < 0.7
    assert_on_simplex(mutated[~untouched])


def test_population_fitness_equals_sklearn_weighted_f1():
    probabilities, y = noisy_problem(300, seed=7)
    stacked = en.stack_probabilities(probabilities)
    population = np.vstack(
        [
            en.random_population(np.random.default_rng(8), 40, 4),
            np.eye(4),  # single members, including the perfect one
            [[0.0, 0.0, 0.0, 1.0]],
        ]
    )
    fitness = en.population_fitness(population, stacked, y)
    assert fitness.shape == (len(population),)
    for weights, value in zip(population, fitness):
        predicted = (en.weighted_ensemble(probabilities, weights) > 0.5).astype(int)
        assert value == pytest.approx(f1_score(y, predicted, average="weighted", zero_division=0), abs=1e-12)
    assert fitness[40 + 1] == 1.0


def test_population_fitness_when_one_class_is_never_predicted():
    stacked = np.array([[0.1, 0.2, 0.3, 0.4]])  # always HEM
    y = np.array([0, 1, 1, 0])
    fitness = en.population_fitness(np.array([[1.0]]), stacked, y)
    assert fitness[0] == pytest.approx(f1_score(y, np.zeros(4, int), average="weighted", zero_division=0))


# --- the search ---------------------------------------------------------------


def test_genetic_weights_favour_the_perfect_member():
    probabilities, y = noisy_problem()
    result = en.genetic_weights(probabilities, y, en.GAConfig(generations=40, restarts=3), seed=0)
    assert_on_simplex(result.weights)
    assert np.argmax(result.weights) == 1
    assert result.weights[1] > 0.5
    average = (en.average_ensemble(probabilities) > 0.5).astype(int)
    assert result.fitness >= f1_score(y, average, average="weighted")
    assert result.fitness == 1.0
    # The reported fitness is what the weighted ensemble scores with those weights.
    predicted = (en.weighted_ensemble(probabilities, result.weights) > 0.5).astype(int)
    assert result.fitness == pytest.approx(f1_score(y, predicted, average="weighted"), abs=1e-12)


def hesitant_problem() -> tuple[list[np.ndarray], np.ndarray]:
    """A hesitant perfect member (0.6 / 0.4) against five confident 60 %-right ones.

    F1 = 1 needs its weight above 0.818, which a random Dirichlet(1)
    population of 50 almost never holds.
    """
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 1000)
    noisy = [np.where(rng.random(1000) < 0.6, y, 1 - y) * 0.9 + 0.05 for _ in range(5)]
    return [np.where(y == 1, 0.6, 0.4), *noisy], y


def test_genetic_weights_search_beats_its_initial_populations():
    probabilities, y = hesitant_problem()
    result = en.genetic_weights(probabilities, y, seed=0)
    assert max(trace[0] for trace in result.history) < 0.9
    assert result.fitness == 1.0
    assert result.weights[0] > 0.818


def test_genetic_weights_history_and_restarts():
    probabilities, y = noisy_problem(200, seed=4)
    # Member 1 no longer perfect.
    probabilities[1] = np.clip(probabilities[1] + np.random.default_rng(0).normal(0, 0.35, 200), 0, 1)
    config = en.GAConfig(population_size=20, generations=15, restarts=4)
    result = en.genetic_weights(probabilities, y, config, seed=3)
    assert len(result.history) == 4 and all(len(trace) == 16 for trace in result.history)
    for trace in result.history:
        assert all(later >= earlier for earlier, later in zip(trace, trace[1:]))  # elitism
    assert result.restart_fitness == [trace[-1] for trace in result.history]
    assert result.fitness == max(result.restart_fitness)
    assert result.fitness == result.restart_fitness[result.best_restart]
    for weights in result.restart_weights:
        assert_on_simplex(weights)
    summary = result.as_dict()
    assert summary["weights"] == pytest.approx(result.weights.tolist())
    assert summary["config"]["population_size"] == 20
    assert summary["config"]["crossover_rate"] == 1.0 and summary["config"]["mutation_rate"] == 0.1
    assert en.GAConfig(crossover_rate=0.8).crossover_rate == 0.8


def test_genetic_weights_deterministic_for_a_seed():
    probabilities, y = noisy_problem(200, seed=5)
    config = en.GAConfig(population_size=12, generations=10, restarts=3)
    first = en.genetic_weights(probabilities, y, config, seed=11)
    second = en.genetic_weights(probabilities, y, config, seed=11)
    np.testing.assert_array_equal(first.weights, second.weights)
    assert first.history == second.history
    # Each restart has its own stream: restart 0 does not depend on how many follow.
    alone = en.genetic_weights(probabilities, y, en.GAConfig(population_size=12, generations=10, restarts=1), seed=11)
    np.testing.assert_array_equal(alone.restart_weights[0], first.restart_weights[0])
    assert alone.history[0] == first.history[0]


def test_without_crossover_or_mutation_the_population_never_leaves_its_initial_chromosomes():
    probabilities, y = hesitant_problem()
    config = en.GAConfig(population_size=10, generations=20, restarts=3, crossover_rate=0.0, mutation_rate=0.0)
    result = en.genetic_weights(probabilities, y, config, seed=2)
    for restart, stream in enumerate(np.random.SeedSequence(2).spawn(3)):
        initial = en.random_population(np.random.default_rng(stream), 10, 6)
        fitness = en.population_fitness(initial, en.stack_probabilities(probabilities), y)
        # The winner is an initial chromosome, and nothing better was ever bred.
        assert any(np.array_equal(result.restart_weights[restart], row) for row in initial)
        assert result.history[restart] == [float(fitness.max())] * 21
    # With crossover on, each restart breeds children fitter than its initial population.
    crossing = en.genetic_weights(probabilities, y, dataclasses.replace(config, crossover_rate=1.0), seed=2)
    assert all(trace[-1] > trace[0] for trace in crossing.history)
    assert [trace[0] for trace in crossing.history] == [trace[0] for trace in result.history]  # same start


def test_ties_prefer_the_most_even_weights():
    population = np.array([[1.0, 0.0], [0.6, 0.4], [0.5, 0.5], [0.5, 0.5]])
    assert en.best_index(population, np.array([0.9, 0.9, 0.9, 0.9])) == 2
    assert en.best_index(population, np.array([0.9, 1.0, 0.9, 0.9])) == 1


def test_gaconfig_validation_and_input_checks():
    with pytest.raises(ValueError, match="tournament_size"):
        en.GAConfig(population_size=5, tournament_size=6)
    with pytest.raises(ValueError, match="mutation_rate"):
        en.GAConfig(mutation_rate=1.5)
    for bad in (-0.1, 1.01, float("nan")):
        with pytest.raises(ValueError, match="crossover_rate"):
            en.GAConfig(crossover_rate=bad)
    en.GAConfig(crossover_rate=0.0), en.GAConfig(crossover_rate=1.0)  # the bounds are allowed
    with pytest.raises(ValueError, match="y_val"):
        en.genetic_weights([np.ones(3), np.ones(3)], [0, 1])
    with pytest.raises(ValueError, match="labels 0 and 1"):
        en.genetic_weights([np.ones(3), np.ones(3)], [0, 1, 2])


def test_ga_convergence_figure_has_one_line_per_restart():
    probabilities, y = noisy_problem(100)
    result = en.genetic_weights(probabilities, y, en.GAConfig(population_size=10, generations=5, restarts=3))
    fig = en.ga_convergence_figure(result)
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes) == 1
    lines = fig.axes[0].get_lines()
    assert len(lines) == 3
    assert len(lines[0].get_xdata()) == 6
    assert "(kept)" in fig.axes[0].get_legend().get_texts()[result.best_restart].get_text()


# --- error analysis -----------------------------------------------------------


@pytest.fixture
def errors() -> pd.DataFrame:
    y = [0, 1, 1, 0, 1]
    predictions = {
        "cnn": np.array([0, 0, 1, 1, 0]),  # right on 0, 2
        "vgg": np.array([0, 0, 0, 1, 1]),  # right on 0, 4
        "resnet": np.array([1, 0, 1, 1, 0]),  # right on 2
    }
    return en.error_analysis(y, predictions, index=["a", "b", "c", "d", "e"])


def test_error_analysis_table(errors):
    assert list(errors.columns) == ["y_true", "cnn", "vgg", "resnet", "n_wrong"]
    assert list(errors.index) == ["a", "b", "c", "d", "e"]
    assert errors["n_wrong"].tolist() == [1, 3, 1, 3, 2]
    assert errors["cnn"].tolist() == [True, False, True, False, False]
    assert errors.attrs["models"] == ["cnn", "vgg", "resnet"]


def test_error_analysis_helpers(errors):
    assert list(en.misclassified_by_all(errors).index) == ["b", "d"]
    counts = en.misclassified_by_k(errors)
    assert counts.to_dict() == {0: 0, 1: 2, 2: 1, 3: 2}
    assert counts.sum() == len(errors)
    alone = en.only_one_right(errors)
    assert alone["only_right"].to_dict() == {"e": "vgg"}
    # Without attrs (lost by some pandas operations) the boolean columns are the models.
    bare = errors.copy()
    bare.attrs = {}
    assert en.misclassified_by_k(bare).to_dict() == counts.to_dict()


def test_error_summary_counts_the_reports_three_numbers(errors):
    summary = en.error_summary(errors)
    assert summary.name == "samples"
    assert summary.to_dict() == {
        "misclassified by all": 2,  # b, d
        "misclassified by exactly one": 2,  # a (resnet wrong), c (vgg wrong)
        "only right: cnn": 0,
        "only right: vgg": 1,  # e
        "only right: resnet": 0,
    }
    assert summary.dtype.kind == "i"
    # Four models, with counts on every line.
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    wrong = 1 - y
    predictions = {
        "a": np.array([1, 1, 0, 0, 0, 1, 1]),  # right on 2, 3, 5, 6
        "b": wrong.copy(),  # never right
        "c": np.array([1, 0, 1, 0, 0, 1, 0]),  # right on 1, 3, 5
        "d": np.array([1, 0, 1, 1, 0, 0, 0]),  # right on 1
    }
    # Right per sample: 0 none, 1 c d, 2 a, 3 a c, 4 none, 5 a c, 6 a.
    summary = en.error_summary(en.error_analysis(y, predictions))
    assert summary.to_dict() == {
        "misclassified by all": 2,
        "misclassified by exactly one": 0,
        "only right: a": 2,
        "only right: b": 0,
        "only right: c": 0,
        "only right: d": 0,
    }


def test_error_analysis_rejects_probabilities_and_clashing_names():
    with pytest.raises(ValueError, match="probabilities"):
        en.error_analysis([0, 1], {"m": np.array([0.2, 0.7])})
    with pytest.raises(ValueError, match="clash"):
        en.error_analysis([0, 1], {"n_wrong": np.array([0, 1])})
    with pytest.raises(ValueError, match="expected 2"):
        en.error_analysis([0, 1], {"m": np.array([0, 1, 1])})


# --- members' signal and the ensembles' gain ------------------------------------


def degenerate_problem(n: int = 200, seed: int = 1) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A good member, one that predicts HEM everywhere, one that ranks at chance, one constant."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    good = np.clip(np.where(y == 1, 0.75, 0.25) + rng.normal(0, 0.15, n), 0.01, 0.99)
    return y, {
        "good": good,
        "all HEM": 0.30 + 0.01 * good,  # ranks like the good member, but never crosses 0.5
        "chance": rng.random(n),  # both classes, AUC near 0.5
        "constant": np.full(n, 0.499),
    }


def test_member_signal_flags_single_class_and_chance_members():
    y, members = degenerate_problem()
    signal = en.member_signal(y, members)
    assert list(signal.index) == ["good", "all HEM", "chance", "constant"]
    assert signal.index.name == "member"
    assert list(signal.columns) == ["predicted_classes", "share_predicted_ALL", "roc_auc", "near_chance", "degenerate"]
    assert signal["degenerate"].to_dict() == {"good": False, "all HEM": True, "chance": True, "constant": True}
    assert signal["predicted_classes"].to_dict() == {"good": 2, "all HEM": 1, "chance": 2, "constant": 1}
    assert signal["near_chance"].to_dict() == {"good": False, "all HEM": False, "chance": True, "constant": True}
    # One class everywhere, yet it ranks like the good member: degenerate for its predictions, not its AUC.
    assert signal.loc["all HEM", "roc_auc"] == pytest.approx(signal.loc["good", "roc_auc"])
    assert signal.loc["good", "roc_auc"] > 0.9
    assert signal.loc["constant", "roc_auc"] == 0.5
    assert signal.loc["all HEM", "share_predicted_ALL"] == 0.0
    assert signal.loc["good", "share_predicted_ALL"] == pytest.approx(np.mean(members["good"] > 0.5))
    # The margin is a parameter.
    assert not en.member_signal(y, members, auc_margin=0.0).loc["chance", "degenerate"]


def test_member_signal_with_one_class_in_y_true_and_bad_input():
    signal = en.member_signal([1, 1, 1], {"a": [0.2, 0.7, 0.9], "b": [[0.6], [0.7], [0.9]]})
    assert signal["roc_auc"].isna().all()
    assert signal["degenerate"].to_dict() == {"a": False, "b": True}
    assert signal.loc["b", "share_predicted_ALL"] == 1.0
    with pytest.raises(ValueError, match="expected 3 probabilities"):
        en.member_signal([0, 1, 1], {"a": [0.2, 0.7]})
    with pytest.raises(ValueError, match="labels 0 and 1"):
        en.member_signal([0, 2], {"a": [0.2, 0.7]})
    with pytest.raises(ValueError, match="at least one"):
        en.member_signal([0, 1], {})


def test_ensemble_gain_against_the_best_member():
    results = {
        "cnn": {"weighted_f1": 0.80},
        "vgg": {"weighted_f1": 0.85},
        "resnet": {"weighted_f1": 0.85},  # a tie for best goes to the first member
        "average ensemble": {"weighted_f1": 0.90},
        "GA-weighted ensemble": {"weighted_f1": 0.85},
    }
    gain = en.ensemble_gain(results, ["cnn", "vgg", "resnet"])
    assert list(gain.index) == ["average ensemble", "GA-weighted ensemble"]
    assert gain.index.name == "ensemble"
    assert list(gain.columns) == ["weighted_f1", "best_member", "best_member_weighted_f1", "chosen_on", "gain",
                                  "beats_best_member"]
    assert gain["best_member"].tolist() == ["vgg", "vgg"]
    assert gain["best_member_weighted_f1"].tolist() == [0.85, 0.85]
    assert gain["gain"].tolist() == pytest.approx([0.05, 0.0])
    assert gain["beats_best_member"].tolist() == [True, False]  # a tie does not beat the best member
    only_average = en.ensemble_gain(results, ["cnn"], ensembles=["average ensemble"])
    assert only_average.loc["average ensemble", "gain"] == pytest.approx(0.10)
    with pytest.raises(ValueError, match="no results for"):
        en.ensemble_gain({"cnn": {"weighted_f1": 0.8}}, ["cnn"])


def test_ensemble_gain_from_binary_reports():
    y, members = degenerate_problem()
    results = {name: ev.binary_report(y, p) for name, p in members.items()}
    results["average ensemble"] = ev.binary_report(y, en.average_ensemble(list(members.values())))
    gain = en.ensemble_gain(results, list(members), ensembles=["average ensemble"])
    row = gain.loc["average ensemble"]
    assert row["best_member"] == "good"
    assert row["gain"] == pytest.approx(results["average ensemble"]["weighted_f1"] - results["good"]["weighted_f1"])
    assert row["beats_best_member"] == (row["gain"] > 0)


def test_max_probability_takes_the_most_confident_member():
    a = np.array([0.9, 0.4, 0.5, 0.2])
    b = np.array([0.3, 0.05, 0.5, 0.8])
    c = np.array([0.6, 0.6, 0.45, 0.85])
    combined = en.max_probability_ensemble([a, b, c])
    # Sample 0: a is surest (0.9, ALL); 1: b (0.05, HEM); 2: c (0.45) beats the undecided a and b; 3: c again.
    np.testing.assert_array_equal(combined, [0.9, 0.05, 0.45, 0.85])
    np.testing.assert_array_equal(en.most_confident_member([a, b, c]), [0, 1, 2, 2])
    np.testing.assert_array_equal(en.max_probability_ensemble([a[:, None], b]), [0.9, 0.05, 0.5, 0.2])  # ties: the first
    # Unlike the average, one confident member overrules two hesitant ones.
    assert en.max_probability_ensemble([[0.02], [0.6], [0.6]])[0] < 0.5 < en.average_ensemble([[0.02], [0.9], [0.9]])[0]
    with pytest.raises(ValueError, match="different numbers"):
        en.max_probability_ensemble([a, b[:2]])


def test_confidence_is_the_largest_class_probability():
    np.testing.assert_allclose(en.confidence([0.1, 0.5, 0.8]), [0.9, 0.5, 0.8])


def test_ensemble_gain_against_the_member_chosen_on_validation():
    test = {"cnn": {"weighted_f1": 0.70}, "vgg": {"weighted_f1": 0.85}, "average ensemble": {"weighted_f1": 0.80}}
    validation = {"cnn": {"weighted_f1": 0.90}, "vgg": {"weighted_f1": 0.75}}
    gain = en.ensemble_gain(test, ["cnn", "vgg"], ["average ensemble"], chosen_on=validation)
    row = gain.loc["average ensemble"]
    assert (row["best_member"], row["chosen_on"]) == ("cnn", "validation")
    assert row["gain"] == pytest.approx(0.10) and row["beats_best_member"]
    assert en.ensemble_gain(test, ["cnn", "vgg"], ["average ensemble"]).loc["average ensemble", "gain"] == pytest.approx(-0.05)
    with pytest.raises(ValueError, match="on validation"):
        en.ensemble_gain(test, ["cnn", "vgg"], ["average ensemble"], chosen_on={"cnn": {"weighted_f1": 0.9}})


def test_gain_interval_is_a_paired_bootstrap_of_the_weighted_f1_difference():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    good = np.where(rng.random(300) < 0.9, y, 1 - y) * 0.8 + 0.1  # right on ~90 % of the cells
    poor = np.where(rng.random(300) < 0.6, y, 1 - y) * 0.8 + 0.1  # right on ~60 %
    low, high = en.gain_interval(y, good, poor, resamples=300)
    point = ev.binary_report(y, good)["weighted_f1"] - ev.binary_report(y, poor)["weighted_f1"]
    assert 0 < low < point < high
    assert en.gain_interval(y, good, good, resamples=50) == (0.0, 0.0)
    with pytest.raises(ValueError, match="as many probabilities as labels"):
        en.gain_interval(y, good[:10], poor)


def test_validated_gain_picks_the_member_on_validation_and_bounds_the_gain():
    rng = np.random.default_rng(1)
    y_val, y_test = rng.integers(0, 2, 200), rng.integers(0, 2, 200)

    def member(y, right):
        return np.where(rng.random(len(y)) < right, y, 1 - y) * 0.6 + 0.2

    predictions = {"a": {"y_val": y_val, "p_val": member(y_val, 0.9), "y_test": y_test, "p_test": member(y_test, 0.7)},
                   "b": {"y_val": y_val, "p_val": member(y_val, 0.6), "y_test": y_test, "p_test": member(y_test, 0.8)}}
    ensembles = {"average ensemble": en.average_ensemble([p["p_test"] for p in predictions.values()])}
    table = en.validated_gain(predictions, ensembles, list(ensembles), resamples=200)
    row = table.loc["average ensemble"]
    assert row["best_member"] == "a" and row["chosen_on"] == "validation"  # b is better on test: not chosen
    assert row["gain low"] <= row["gain"] <= row["gain high"]

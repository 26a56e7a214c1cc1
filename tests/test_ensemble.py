"""cytobook.ensemble: averages, the genetic algorithm's operators and search, error analysis."""

from __future__ import annotations

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


def test_genetic_weights_search_beats_its_initial_populations():
    # A hesitant perfect member (0.6 / 0.4) against five confident 60 %-right ones: F1 = 1 needs
    # its weight above 0.818, which a random Dirichlet(1) population of 50 almost never holds.
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 1000)
    noisy = [np.where(rng.random(1000) < 0.6, y, 1 - y) * 0.9 + 0.05 for _ in range(5)]
    probabilities = [np.where(y == 1, 0.6, 0.4), *noisy]
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


def test_ties_prefer_the_most_even_weights():
    population = np.array([[1.0, 0.0], [0.6, 0.4], [0.5, 0.5], [0.5, 0.5]])
    assert en.best_index(population, np.array([0.9, 0.9, 0.9, 0.9])) == 2
    assert en.best_index(population, np.array([0.9, 1.0, 0.9, 0.9])) == 1


def test_gaconfig_validation_and_input_checks():
    with pytest.raises(ValueError, match="tournament_size"):
        en.GAConfig(population_size=5, tournament_size=6)
    with pytest.raises(ValueError, match="mutation_rate"):
        en.GAConfig(mutation_rate=1.5)
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


def test_error_analysis_rejects_probabilities_and_clashing_names():
    with pytest.raises(ValueError, match="probabilities"):
        en.error_analysis([0, 1], {"m": np.array([0.2, 0.7])})
    with pytest.raises(ValueError, match="clash"):
        en.error_analysis([0, 1], {"n_wrong": np.array([0, 1])})
    with pytest.raises(ValueError, match="expected 2"):
        en.error_analysis([0, 1], {"m": np.array([0, 1, 1])})


# --- degenerate members and the verdict ----------------------------------------


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


def test_degenerate_members_names_single_class_and_chance_members():
    y, members = degenerate_problem()
    found = en.degenerate_members(y, members)
    assert list(found) == ["all HEM", "chance", "constant"]
    assert found["all HEM"].startswith("predicts HEM for every test image; ROC AUC 0.9")  # one class, yet it ranks well
    assert "within 0.05 of chance" in found["chance"] and "predicts" not in found["chance"]
    assert found["constant"] == "predicts HEM for every test image; ROC AUC 0.500, within 0.05 of chance"
    # The margin is a parameter; a member predicting ALL everywhere is named with that class.
    assert "chance" not in en.degenerate_members(y, members, auc_margin=0.0)
    only_all = en.degenerate_members(y, {"m": np.full(len(y), 0.9)}, class_names=("normal", "cancer"), unit="cell")
    assert only_all["m"].startswith("predicts cancer for every cell")
    # One class in y_true: the AUC is undefined and only the single-class test applies.
    assert en.degenerate_members([1, 1, 1], {"a": [0.2, 0.7, 0.9], "b": [0.6, 0.7, 0.9]}) == {"b": "predicts ALL for every test image"}
    assert en.degenerate_members(y, {"good": members["good"]}) == {}


def _results(y, members, ga_weights=None):
    results = {name: ev.binary_report(y, p) for name, p in members.items()}
    results["average ensemble"] = ev.binary_report(y, en.average_ensemble(list(members.values())))
    if ga_weights is not None:
        results["GA-weighted ensemble"] = ev.binary_report(y, en.weighted_ensemble(list(members.values()), ga_weights))
    return results


def test_verdict_blames_degenerate_members_and_missing_imagenet_weights():
    from cytobook.weights import imagenet_file

    y, members = degenerate_problem()
    members = {"scratch CNN": members["good"], "VGG16": members["all HEM"], "ResNet50": members["constant"]}
    weights = [0.9, 0.06, 0.04]
    results = _results(y, members, weights)
    results["GA-weighted ensemble"]["weighted_f1"] = results["scratch CNN"]["weighted_f1"]  # a tie does not improve
    random = {"VGG16": imagenet_file("vgg16"), "ResNet50": imagenet_file("resnet50")}
    lines = en.ensemble_verdict(y, members, results, ga_weights=dict(zip(members, weights)), random_init=random,
                                training="64 px images and 1 fine-tuning epoch")
    text = "\n".join(lines)
    assert lines[0].startswith("average ensemble: weighted F1") and "the best member (scratch CNN" in lines[0]
    assert lines[1].startswith("GA-weighted ensemble: weighted F1")
    assert "Degenerate members: VGG16 (predicts HEM for every test image" in text
    assert "ResNet50 (predicts HEM for every test image; ROC AUC 0.500, within 0.05 of chance)" in text
    # ResNet50 ranks at chance; VGG16 ranks well but never crosses 0.5.
    assert ("ResNet50 carries no signal to combine; VGG16 never crosses the threshold, so whatever ranking it has only "
            "pulls an average to one side instead of adding signal to combine.") in text
    assert "The plain average gives them 2 of its 3 equal shares, so it is dragged toward their near-constant output (mean P(ALL) " in text
    assert "The GA rightly gives them little weight (0.100 in all, against 2/3 in the plain average)" in text
    assert "VGG16 and ResNet50 are degenerate because they started from RANDOM weights" in text
    assert "with 64 px images and 1 fine-tuning epoch" in text
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in text and "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in text
    assert str(imagenet_file("vgg16").cached_path.parent) in text
    # One informative member: nothing to combine, and not the general explanation.
    assert lines[-1] == "Why not: only scratch CNN is not degenerate, so there is nothing to combine; an ensemble can at best match it."
    assert "majority of the probability mass" not in text


def test_verdict_without_random_weights_or_ga_and_with_a_big_ga_share():
    y, members = degenerate_problem()
    members = {"cnn": members["good"], "flat": members["constant"]}
    results = _results(y, members, [0.5, 0.5])
    text = "\n".join(en.ensemble_verdict(y, members, results, ga_weights={"cnn": 0.5, "flat": 0.5}))
    assert "Degenerate member: flat" in text and "carries no signal" in text
    assert "The GA gives it 0.500 of the weight in all" in text and "only shifts where the weighted average crosses" in text
    assert "RANDOM" not in text
    assert "flat learnt no usable signal in this run although it was not held back by missing ImageNet weights" in text
    nothing = {"a": members["flat"], "b": np.full(len(y), 0.3)}
    lines = en.ensemble_verdict(y, nothing, _results(y, nothing, [0.5, 0.5]), ga_weights={"a": 0.5, "b": 0.5})
    assert lines[-1] == "Why not: every member is degenerate, so there is no signal for an ensemble to combine."
    assert not any(line.startswith(("The plain average", "The GA")) for line in lines)  # nothing to compare them with


def test_verdict_keeps_the_general_explanation_when_every_member_is_informative():
    probabilities, y = noisy_problem()
    members = {f"m{i}": p for i, p in enumerate(probabilities) if i != 1}  # three noisy, informative members
    results = _results(y, members)
    results["average ensemble"]["weighted_f1"] = 0.0  # force "does not improve"
    lines = en.ensemble_verdict(y, members, results)
    assert len(lines) == 2
    assert lines[1].startswith("Why not: of the ") and "majority of the probability mass" in lines[1]
    assert "Degenerate" not in "\n".join(lines)
    # An ensemble that improves needs no explanation.
    results["average ensemble"]["weighted_f1"] = 1.0
    improved = en.ensemble_verdict(y, members, results)
    assert len(improved) == 1 and "average ensemble: weighted F1 1.0000, improves on the best member" in improved[0]


def test_verdict_among_informative_members_when_two_or_more_remain():
    y, base = degenerate_problem()
    rng = np.random.default_rng(5)
    other = np.clip(base["good"] + rng.normal(0, 0.2, len(y)), 0.01, 0.99)
    members = {"a": base["good"], "b": other, "flat": base["constant"]}
    results = _results(y, members)
    results["average ensemble"]["weighted_f1"] = 0.0
    lines = en.ensemble_verdict(y, members, results)
    assert lines[-1].startswith("Why not: among the 2 informative members, of the ")


def test_degenerate_summary_for_the_results_table():
    assert en.degenerate_summary([]) is None
    one = en.degenerate_summary(["VGG16"])
    assert one.startswith("VGG16 is degenerate in this run") and "it carries no signal" in one and "random" not in one
    both = en.degenerate_summary(["VGG16", "ResNet50 v1"], random_init=["ResNet50 v1"])
    assert both.startswith("VGG16 and ResNet50 v1 are degenerate in this run")
    assert "; ResNet50 v1 started from random weights because no ImageNet weights were cached" in both
    assert both.endswith(".")

import itertools

import numpy as np
import pytest

from bench.core.hypervolume import front_hypervolume, hypervolume, minimization_points


def test_two_dimensional_known_value():
    # boxes [x, 1] x [y, 1] of (0.2, 0.6), (0.4, 0.3), (0.7, 0.1): 0.2*0.4 + 0.3*0.7 + 0.3*0.9 = 0.56
    front = [[0.2, 0.6], [0.4, 0.3], [0.7, 0.1]]
    assert hypervolume(front, (1.0, 1.0)) == pytest.approx(0.56, abs=1e-12)
    # a dominated point and a point outside the reference box change nothing
    assert hypervolume([*front, [0.5, 0.5], [1.2, 0.0]], (1.0, 1.0)) == pytest.approx(0.56, abs=1e-12)


def test_three_dimensional_known_value():
    # [0.5,1]^3 (0.125) union [0,1]x[0.8,1]^2 (0.04) minus their overlap [0.5,1]x[0.8,1]^2 (0.02) = 0.145
    assert hypervolume([[0.5, 0.5, 0.5], [0.0, 0.8, 0.8]], (1, 1, 1)) == pytest.approx(0.145, abs=1e-12)
    assert hypervolume([[0.5, 0.5, 0.5]], (1, 1, 1)) == pytest.approx(0.125, abs=1e-12)


def test_nothing_inside_gives_zero():
    assert hypervolume([[1.0, 0.5], [2.0, 2.0]], (1.0, 1.0)) == 0.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        hypervolume(np.zeros((3, 3)), (1.0, 1.0))


def test_accuracy_front_is_converted_to_errors(mini_spec):
    front = [
        {
            "ray": [1.0, 0.0],
            "metrics": {"top-left": {"accuracy": 0.9, "loss": 0.3}, "bottom-right": {"accuracy": 0.6, "loss": 1.0}},
        },
        {
            "ray": [0.0, 1.0],
            "metrics": {"top-left": {"accuracy": 0.7, "loss": 0.8}, "bottom-right": {"accuracy": 0.8, "loss": 0.5}},
        },
    ]
    assert np.allclose(minimization_points(front, mini_spec), [[0.1, 0.4], [0.3, 0.2]])
    # errors (0.1, 0.4), (0.3, 0.2) vs ref (1, 1): 0.9*0.6 + 0.7*0.8 - overlap 0.7*0.6 = 0.68
    assert front_hypervolume(front, mini_spec) == pytest.approx(0.68, abs=1e-12)


def inclusion_exclusion_hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact union volume of the boxes [p, ref] by inclusion-exclusion (independent of pymoo; small N)."""
    points = points[(points < reference).all(axis=1)]
    total = 0.0
    for size in range(1, len(points) + 1):
        for subset in itertools.combinations(range(len(points)), size):
            corner = points[list(subset)].max(axis=0)
            total += (-1) ** (size + 1) * float(np.prod(reference - corner))
    return total


@pytest.mark.parametrize("dims", [2, 3, 4, 5])
def test_pymoo_matches_moocore_and_inclusion_exclusion(dims: int):
    moocore = pytest.importorskip("moocore")
    rng = np.random.default_rng(dims)
    for trial in range(20):
        n = int(rng.integers(1, 9))
        points = rng.uniform(0.0, 1.2, size=(n, dims))
        if trial % 4 == 0:  # points on a simplex: all mutually non-dominated
            points = rng.dirichlet(np.ones(dims), size=n)
        reference = rng.uniform(0.9, 1.5, size=dims)
        ours = hypervolume(points, reference)
        inside = points[(points < reference).all(axis=1)]
        theirs = float(moocore.hypervolume(inside, ref=reference)) if len(inside) else 0.0
        assert ours == pytest.approx(theirs, abs=1e-12, rel=0)
        assert ours == pytest.approx(inclusion_exclusion_hypervolume(points, reference), abs=1e-12, rel=0)


# UTKFace: entry 2's race cross-entropy (1.7, above chance ln 5 = 1.61) leaves the official box.
UTKFACE_FRONT = [
    {
        "ray": [1.0, 0.0, 0.0],
        "metrics": {
            "age": {"huber": 0.3, "mae": 0.5, "mse": 0.7, "mae_original": 6.0},
            "gender": {"accuracy": 0.9, "loss": 0.2},
            "race": {"accuracy": 0.8, "loss": 0.5},
        },
    },
    {
        "ray": [0.0, 0.0, 1.0],
        "metrics": {
            "age": {"huber": 0.6, "mae": 0.8, "mse": 1.1, "mae_original": 9.0},
            "gender": {"accuracy": 0.7, "loss": 0.4},
            "race": {"accuracy": 0.6, "loss": 1.7},
        },
    },
]
# Cityscapes: mIoU, pixel accuracy and cross-entropy; disparity errors (the depth loss equals abs_err).
CITYSCAPES_FRONT = [
    {
        "ray": [1.0, 0.0],
        "metrics": {
            "segmentation": {"miou": 0.5, "pixel_accuracy": 0.9, "loss": 0.4},
            "depth": {"abs_err": 0.02, "rel_err": 0.3, "loss": 0.02},
        },
    },
    {
        "ray": [0.0, 1.0],
        "metrics": {
            "segmentation": {"miou": 0.3, "pixel_accuracy": 0.8, "loss": 0.9},
            "depth": {"abs_err": 0.01, "rel_err": 0.2, "loss": 0.01},
        },
    },
]


def test_utkface_official_hypervolume_is_on_the_losses_and_errors_is_an_alternative():
    from bench.core.registry import DATASETS

    spec = DATASETS.get("utkface")
    assert [d.name for d in spec.hv_definitions] == ["official", "errors"]
    official = spec.hv_definition()
    assert official.coordinates == (("age", "huber"), ("gender", "loss"), ("race", "loss"))
    assert official.reference == (1.0, 1.0, 1.0) and spec.hv_name == "official"
    # official: (0.3, 0.2, 0.5) inside, (0.6, 0.4, 1.7) outside the reference: 0.7 * 0.8 * 0.5 = 0.28
    assert np.allclose(minimization_points(UTKFACE_FRONT, spec), [[0.3, 0.2, 0.5], [0.6, 0.4, 1.7]], atol=1e-15)
    assert front_hypervolume(UTKFACE_FRONT, spec) == pytest.approx(0.28, abs=1e-12)
    # errors: (0.3, 0.1, 0.2) dominates (0.6, 0.3, 0.4): 0.7 * 0.9 * 0.8 = 0.504
    errors = spec.hv_definition("errors")
    assert errors.coordinates == (("age", "huber"), ("gender", "accuracy"), ("race", "accuracy"))
    assert np.allclose(minimization_points(UTKFACE_FRONT, spec, errors), [[0.3, 0.1, 0.2], [0.6, 0.3, 0.4]])
    assert front_hypervolume(UTKFACE_FRONT, spec, errors) == pytest.approx(0.504, abs=1e-12)


def test_cityscapes_official_hypervolume_is_on_the_losses_with_reference_one():
    from bench.core.registry import DATASETS

    spec = DATASETS.get("cityscapes")
    official, ours = spec.hv_definitions
    assert (official.name, official.coordinates, official.reference) == (
        "official",
        (("segmentation", "loss"), ("depth", "loss")),
        (1.0, 1.0),
    )
    assert (ours.name, ours.coordinates, ours.reference) == (
        "miou-abs_err",
        (("segmentation", "miou"), ("depth", "abs_err")),
        (1.0, 0.1),
    )
    # official: (0.4, 0.02), (0.9, 0.01) vs (1, 1): 0.6 * 0.98 + 0.1 * 0.01 = 0.589
    assert front_hypervolume(CITYSCAPES_FRONT, spec) == pytest.approx(0.589, abs=1e-12)
    # ours: (0.5, 0.02), (0.7, 0.01) vs (1, 0.1): 0.5 * 0.08 + 0.3 * 0.01 = 0.043
    assert np.allclose(minimization_points(CITYSCAPES_FRONT, spec, ours), [[0.5, 0.02], [0.7, 0.01]])
    assert front_hypervolume(CITYSCAPES_FRONT, spec, ours) == pytest.approx(0.043, abs=1e-12)


def digits_front(entries: list[tuple[tuple[float, float, float], tuple[float, float, float]]]) -> list[dict]:
    """A MultiMNIST-3 front from ((CE top-left, top-right, bottom), (accuracy top-left, top-right, bottom))."""
    tasks = ("top-left", "top-right", "bottom")
    return [
        {
            "ray": [1.0, 0.0, 0.0],
            "metrics": {t: {"accuracy": a, "loss": ce} for t, ce, a in zip(tasks, losses, accuracies, strict=True)},
        }
        for losses, accuracies in entries
    ]


# MultiMNIST-3: A and C inside the official box; B's bottom cross-entropy 2.5 (chance: ln 10 = 2.30) is outside.
MULTIMNIST3_FRONT = digits_front(
    [
        ((0.2, 0.5, 0.4), (0.95, 0.85, 0.9)),  # A
        ((0.6, 0.3, 2.5), (0.8, 0.9, 0.3)),  # B
        ((0.5, 0.6, 0.1), (0.9, 0.8, 0.85)),  # C
    ]
)


def test_multimnist3_official_hypervolume_is_on_the_cross_entropies_and_errors_is_an_alternative():
    """nik-dim/palora pareto_front_visualizer3d.py: pymoo HV(ref_point=[1, 1, 1]) on the test
    (loss/Task-1, loss/Task-2, loss/Task-3) = (top-left, bottom, top-right) cross-entropies."""
    from bench.core.registry import DATASETS

    spec = DATASETS.get("multimnist3")
    assert [d.name for d in spec.hv_definitions] == ["official", "errors"] and spec.hv_name == "official"
    official = spec.hv_definition()
    assert official.coordinates == (("top-left", "loss"), ("top-right", "loss"), ("bottom", "loss"))
    assert official.reference == (1.0, 1.0, 1.0) and "pareto_front_visualizer3d.py" in official.note
    # by hand: box A [0.2,1]x[0.5,1]x[0.4,1] = 0.8 * 0.5 * 0.6 = 0.24; box C = 0.5 * 0.4 * 0.9 = 0.18;
    # their overlap from (0.5, 0.6, 0.4) = 0.5 * 0.4 * 0.6 = 0.12; B adds nothing: 0.24 + 0.18 - 0.12 = 0.30
    assert front_hypervolume(MULTIMNIST3_FRONT, spec) == pytest.approx(0.30, abs=1e-12)
    # the official coordinate order (top-left, bottom, top-right) gives the same union volume
    points = minimization_points(MULTIMNIST3_FRONT, spec)
    assert np.allclose(points, [[0.2, 0.5, 0.4], [0.6, 0.3, 2.5], [0.5, 0.6, 0.1]], atol=1e-15)
    official_order = points[:, [0, 2, 1]]
    assert inclusion_exclusion_hypervolume(official_order, np.ones(3)) == pytest.approx(0.30, abs=1e-12)
    # errors: A (0.05, 0.15, 0.1) dominates C (0.1, 0.2, 0.15); B (0.2, 0.1, 0.7):
    # 0.95 * 0.85 * 0.9 + 0.8 * 0.9 * 0.3 - overlap from (0.2, 0.15, 0.7) 0.8 * 0.85 * 0.3 = 0.73875
    errors = spec.hv_definition("errors")
    assert errors.coordinates == (("top-left", "accuracy"), ("top-right", "accuracy"), ("bottom", "accuracy"))
    assert errors.reference == (1.0, 1.0, 1.0)
    assert front_hypervolume(MULTIMNIST3_FRONT, spec, errors) == pytest.approx(0.73875, abs=1e-12)


def test_single_definition_datasets_keep_their_default(mini_spec):
    assert [d.name for d in mini_spec.hv_definitions] == ["default"]
    assert mini_spec.hv_definition().coordinates == (("top-left", "accuracy"), ("bottom-right", "accuracy"))
    assert mini_spec.hv_definition().reference == (1.0, 1.0)


def test_unknown_or_malformed_definitions_are_errors(mini_spec):
    import dataclasses

    from bench.core.spec import HypervolumeDefinition

    with pytest.raises(ValueError, match="valid: default"):
        mini_spec.hv_definition("official")
    with pytest.raises(ValueError, match="2 reference coordinates for 1"):
        HypervolumeDefinition("x", (("top-left", "loss"),), (1.0, 1.0))
    bad = HypervolumeDefinition("x", (("top-left", "huber"), ("bottom-right", "loss")), (1.0, 1.0))
    with pytest.raises(ValueError, match="'top-left' 'huber'"):
        dataclasses.replace(mini_spec, hv_alternatives=(bad,))
    twin = HypervolumeDefinition("default", (("top-left", "loss"), ("bottom-right", "loss")), (1.0, 1.0))
    with pytest.raises(ValueError, match="repeat"):
        dataclasses.replace(mini_spec, hv_alternatives=(twin,))

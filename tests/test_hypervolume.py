import numpy as np
import pytest

from bench.analysis.hypervolume import front_hypervolume, hypervolume, minimization_points


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

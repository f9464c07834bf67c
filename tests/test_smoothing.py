"""One-Euro smoothing: hand-checked steps, rotations filtered like angles, jitter removed, rotations stay rotations."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lib.core.config import load_config
from lib.demo.smoothing import OneEuro


def test_defaults_come_from_the_config():
    demo = load_config().DEMO
    assert demo.SMOOTH is False
    assert (demo.SMOOTH_MIN_CUTOFF, demo.SMOOTH_BETA, demo.SMOOTH_D_CUTOFF) == (2.0, 1.0, 1.0)


def test_step_response_by_hand():
    # beta = 0: a first-order low-pass, a = 1 / (1 + 25 / (2 pi 1 Hz)) = 0.2008486 per frame at 25 fps. The
    # forward pass gives f = 0, a, 1 - (1 - a)^2, 1 - (1 - a)^3 = 0, 0.20085, 0.36136, 0.48963; the backward
    # pass starts from 0.48963 and moves a of the way to each earlier f.
    out = OneEuro(1.0, 0.0, 1.0, 25.0).vectors(np.array([0.0, 1.0, 1.0, 1.0])[:, None, None])[:, 0, 0]
    np.testing.assert_allclose(out, [0.3284818, 0.4110383, 0.4638647, 0.4896277], atol=1e-7)
    # beta = 0.1, forward: the step's speed 25 /s, low-passed to a * 25 = 5.0212, gives the cutoff 1.50212 Hz
    # and 0.27406. Backward: speed a * 0.27406 * 25 = 1.37611 /s, cutoff 1.137611 Hz, alpha 0.222337, so the
    # first frame becomes 0.27406 (1 - 0.222337) = 0.213125.
    out = OneEuro(1.0, 0.1, 1.0, 25.0).vectors(np.array([0.0, 1.0])[:, None, None])[:, 0, 0]
    np.testing.assert_allclose(out, [0.2131249, 0.2740600], atol=1e-7)


def test_rotations_about_one_axis_filter_like_their_angle():
    """Rotations about a fixed axis commute, so the geodesic filter equals the scalar filter of the angle."""
    rng = np.random.default_rng(0)
    angle = np.cumsum(rng.normal(0, 0.2, 40))
    axis = np.array([0.2, -0.6, 0.77]) / np.linalg.norm([0.2, -0.6, 0.77])
    rotations = Rotation.from_rotvec(angle[:, None] * axis).as_matrix()[:, None]
    filt = OneEuro(2.0, 0.3, 1.0, 30.0)
    smoothed = filt.rotations(rotations)[:, 0]
    expected = Rotation.from_rotvec(filt.vectors(angle[:, None, None])[:, 0] * axis).as_matrix()
    np.testing.assert_allclose(smoothed, expected, atol=1e-9)


def _angular_acceleration(rotations):
    """Mean |change of the frame-to-frame rotation vector| (rad/frame^2) of rotations (n, 3, 3)."""
    r = Rotation.from_matrix(rotations)
    velocity = (r[:-1].inv() * r[1:]).as_rotvec()
    return np.linalg.norm(np.diff(velocity, axis=0), axis=1)[10:-10].mean()


@pytest.mark.parametrize('amplitude, hertz, max_error, max_acceleration', [
    ((0.3, 0.1), (0.2, 0.4), 0.6, 0.15),   # slow: measured 0.42x, 0.08x (a causal pass: 0.74x, 0.29x)
    ((0.6, 0.3), (0.5, 1.0), 1.0, 0.25),   # up to 4 rad/s: measured 0.96x, 0.18x (causal: 2.3x, 0.38x)
])
def test_jitter_is_removed_without_lag_and_still_joints_kept(amplitude, hertz, max_error, max_acceleration):
    """A joint turning about two axes with 0.02 rad of noise at 30 fps, smoothed with the default parameters:
    error to the clean motion and frame-to-frame angular acceleration, relative to the noisy input's."""
    rng = np.random.default_rng(1)
    t = np.arange(120) / 30.0
    clean = Rotation.from_rotvec(np.stack([amplitude[0] * np.sin(2 * np.pi * hertz[0] * t),
                                           amplitude[1] * np.sin(2 * np.pi * hertz[1] * t), 0 * t], 1))
    noisy = clean * Rotation.from_rotvec(rng.normal(0, 0.02, (120, 3)))
    two = np.stack([noisy.as_matrix(), np.tile(np.eye(3), (120, 1, 1))], 1)   # a jittery joint and a still one
    demo = load_config().DEMO
    smoothed = OneEuro(demo.SMOOTH_MIN_CUTOFF, demo.SMOOTH_BETA, demo.SMOOTH_D_CUTOFF, 30.0).rotations(two)

    def error(rotations):
        return (Rotation.from_matrix(rotations) * clean.inv()).magnitude()[10:-10].mean()   # ends: no history

    assert error(smoothed[:, 0]) < max_error * error(two[:, 0])
    assert _angular_acceleration(smoothed[:, 0]) < max_acceleration * _angular_acceleration(two[:, 0])
    np.testing.assert_array_equal(smoothed[:, 1], two[:, 1])
    np.testing.assert_allclose(smoothed @ np.swapaxes(smoothed, -1, -2), np.broadcast_to(np.eye(3), two.shape),
                               atol=1e-12)

"""Constant-velocity Kalman filter of one person box, the motion model of the tracker (as in SORT).

State ``(8,)``: box centre ``cx, cy``, width ``w`` and height ``h`` in pixels, and their velocities in pixels
per frame. A detection measures the first four. Noise scales with the box height, so a 60-pixel and a
600-pixel person are followed alike: position noise :data:`POSITION_STD` x height, velocity noise
:data:`VELOCITY_STD` x height (standard deviations per frame).
"""
from __future__ import annotations

import numpy as np

from lib.demo.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh

# Standard deviations, as fractions of the box height: of a detected box coordinate around the true one
# (detector jitter), and of the process noise per frame on positions and on velocities (people walk at a
# nearly constant velocity).
MEASUREMENT_STD = 1 / 20
POSITION_STD = 1 / 20
VELOCITY_STD = 1 / 320
# Initial velocity uncertainty, as a multiple of VELOCITY_STD: a new track may move at any walking speed.
INITIAL_VELOCITY_SCALE = 10.0
# A detection further than this squared Mahalanobis distance from the predicted box is not this person:
# the 99% quantile of the chi-square distribution with 4 degrees of freedom (cx, cy, w, h).
GATE_CHI2 = 13.28

_TRANSITION = np.eye(8) + np.eye(8, k=4)      # x' = x + v (one frame), v' = v
_MEASUREMENT = np.eye(4, 8)


class BoxKalmanFilter:
    """The motion of one box. ``predict()`` advances one frame, ``update(box)`` folds in a detection;
    ``box`` is the current estimate (x1y1x2y2 pixels) and ``velocity`` its ``(4,)`` cx, cy, w, h velocity
    (pixels per frame)."""

    def __init__(self, box_xyxy: np.ndarray):
        measured = xyxy_to_cxcywh(box_xyxy)
        self.state = np.concatenate([measured, np.zeros(4)])
        scale = max(measured[3], 1.0)
        std = np.concatenate([np.full(4, 2 * MEASUREMENT_STD * scale),
                              np.full(4, INITIAL_VELOCITY_SCALE * VELOCITY_STD * scale)])
        self.covariance = np.diag(std ** 2)

    @property
    def box(self) -> np.ndarray:
        return cxcywh_to_xyxy(self._sane(self.state[:4]))

    @property
    def velocity(self) -> np.ndarray:
        return self.state[4:].copy()

    def predict(self) -> np.ndarray:
        """Advance one frame; returns the predicted box (x1y1x2y2)."""
        scale = max(self.state[3], 1.0)
        noise = np.concatenate([np.full(4, POSITION_STD * scale), np.full(4, VELOCITY_STD * scale)]) ** 2
        self.state = _TRANSITION @ self.state
        self.state[:4] = self._sane(self.state[:4])
        self.covariance = _TRANSITION @ self.covariance @ _TRANSITION.T + np.diag(noise)
        return self.box

    def update(self, box_xyxy: np.ndarray) -> None:
        """Correct the state with a detected box (x1y1x2y2 pixels)."""
        measured = xyxy_to_cxcywh(box_xyxy)
        innovation_cov = self._innovation_covariance()
        gain = np.linalg.solve(innovation_cov, _MEASUREMENT @ self.covariance).T
        self.state = self.state + gain @ (measured - _MEASUREMENT @ self.state)
        self.covariance = (np.eye(8) - gain @ _MEASUREMENT) @ self.covariance

    def distances(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distances ``(n,)`` of detected boxes ``(n, 4)`` x1y1x2y2 from the current
        (predicted) box, under its uncertainty plus the detection noise; compare with :data:`GATE_CHI2`."""
        diff = xyxy_to_cxcywh(np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)) - self.state[:4]
        return np.einsum('ni,ni->n', diff, np.linalg.solve(self._innovation_covariance(), diff.T).T)

    def _innovation_covariance(self) -> np.ndarray:
        """Covariance ``(4, 4)`` of a detection around the current box: the state's plus the detection
        noise (:data:`POSITION_STD` x the current height)."""
        noise = np.diag(np.full(4, (MEASUREMENT_STD * max(self.state[3], 1.0)) ** 2))
        return _MEASUREMENT @ self.covariance @ _MEASUREMENT.T + noise

    @staticmethod
    def _sane(cxcywh: np.ndarray) -> np.ndarray:
        """Width and height kept at least one pixel (a shrinking box must not turn inside out)."""
        out = np.array(cxcywh, dtype=np.float64)
        out[2:] = np.maximum(out[2:], 1.0)
        return out

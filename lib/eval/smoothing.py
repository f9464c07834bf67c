"""``evaluate.py --filter``: the official temporal smoothing of the predicted joint rotations (MEVA's slerp
filter, which the released evaluate.py applies), written out on arrays.

For one sequence of rotations ``R_t`` of one joint (t = 0 .. T-1), in float64:

1. Quaternions ``q_t = (w, x, y, z)``: the unit eigenvector of the largest eigenvalue of the symmetric 4 x 4
   matrix ``K(R_t) / 3`` (Bar-Itzhack's method, the best-fitting quaternion of a not exactly orthogonal
   float32 matrix), sign chosen so that ``w >= 0``. With ``R = [[m00, m01, m02], ...]``, the lower triangle of
   ``K`` is::

       [m00-m11-m22                                 ]
       [m01+m10      m11-m00-m22                    ]
       [m02+m20      m12+m21      m22-m00-m11       ]
       [m21-m12      m02-m20      m10-m01  m00+m11+m22]

   and the eigenvector ``(v0, v1, v2, v3)`` gives ``q = (v3, v0, v1, v2)``.
2. Hemisphere continuity, in time order: ``q_t <- -q_t`` when ``|q_{t-1} - q_t| > |q_{t-1} + q_t|`` (with the
   already corrected ``q_{t-1}``).
3. Recursive slerp, in time order: ``s_0 = q_0``, ``s_t = slerp(s_{t-1}, q_t, ratio)`` (ratio 0.3): a first-order
   low-pass on the rotation group; the result lags the motion. ``slerp(a, b, f)`` normalises both, returns
   ``a`` when ``||a.b| - 1| < eps`` (eps = 4 x float64 epsilon), flips ``b`` when ``a.b < 0``, and else is
   ``(sin((1-f) w) a + sin(f w) b) / sin(w)`` with ``w = acos(a.b)`` (``a`` again when ``w < eps``).
4. Back to matrices: ``q <- q sqrt(2 / |q|^2)``, then ``R = [[1-q2q2-q3q3, q1q2-q3q0, q1q3+q2q0],
   [q1q2+q3q0, 1-q1q1-q3q3, q2q3-q1q0], [q1q3-q2q0, q2q3+q1q0, 1-q1q1-q2q2]]`` (identity when ``|q|^2 < eps``),
   cast to float32.

The loops over time stay (steps 2 and 3 are recursive); joints are processed together.
"""
from __future__ import annotations

import numpy as np

SLERP_RATIO = 0.3
EPS = np.finfo(np.float64).eps * 4.0


def rotmat_to_quaternion(rotmat: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` rotation matrices -> ``(..., 4)`` unit quaternions ``(w, x, y, z)``, ``w >= 0``, float64
    (step 1 of the module docstring)."""
    m = np.asarray(rotmat, dtype=np.float64)
    k = np.zeros(m.shape[:-2] + (4, 4))
    k[..., 0, 0] = m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2]
    k[..., 1, 0] = m[..., 0, 1] + m[..., 1, 0]
    k[..., 1, 1] = m[..., 1, 1] - m[..., 0, 0] - m[..., 2, 2]
    k[..., 2, 0] = m[..., 0, 2] + m[..., 2, 0]
    k[..., 2, 1] = m[..., 1, 2] + m[..., 2, 1]
    k[..., 2, 2] = m[..., 2, 2] - m[..., 0, 0] - m[..., 1, 1]
    k[..., 3, 0] = m[..., 2, 1] - m[..., 1, 2]
    k[..., 3, 1] = m[..., 0, 2] - m[..., 2, 0]
    k[..., 3, 2] = m[..., 1, 0] - m[..., 0, 1]
    k[..., 3, 3] = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    k /= 3.0
    values, vectors = np.linalg.eigh(k)            # reads the lower triangle
    best = np.argmax(values, axis=-1)
    v = np.take_along_axis(vectors, best[..., None, None], axis=-1)[..., 0]     # (..., 4) = (x, y, z, w)
    q = v[..., [3, 0, 1, 2]]
    return np.where(q[..., :1] < 0.0, -q, q)


def quaternion_to_rotmat(quat: np.ndarray) -> np.ndarray:
    """``(..., 4)`` quaternions ``(w, x, y, z)`` (any norm) -> ``(..., 3, 3)`` rotation matrices, float64 (step 4)."""
    q = np.array(quat, dtype=np.float64)
    n = np.sum(q * q, axis=-1, keepdims=True)
    small = n[..., 0] < EPS
    q = q * np.sqrt(2.0 / np.where(small[..., None], 1.0, n))
    qq = q[..., :, None] * q[..., None, :]          # outer product (..., 4, 4)
    r = np.empty(q.shape[:-1] + (3, 3))
    r[..., 0, 0] = 1.0 - qq[..., 2, 2] - qq[..., 3, 3]
    r[..., 0, 1] = qq[..., 1, 2] - qq[..., 3, 0]
    r[..., 0, 2] = qq[..., 1, 3] + qq[..., 2, 0]
    r[..., 1, 0] = qq[..., 1, 2] + qq[..., 3, 0]
    r[..., 1, 1] = 1.0 - qq[..., 1, 1] - qq[..., 3, 3]
    r[..., 1, 2] = qq[..., 2, 3] - qq[..., 1, 0]
    r[..., 2, 0] = qq[..., 1, 3] - qq[..., 2, 0]
    r[..., 2, 1] = qq[..., 2, 3] + qq[..., 1, 0]
    r[..., 2, 2] = 1.0 - qq[..., 1, 1] - qq[..., 2, 2]
    r[small] = np.eye(3)
    return r


def slerp(a: np.ndarray, b: np.ndarray, fraction: float) -> np.ndarray:
    """Spherical interpolation of quaternion rows ``a``, ``b`` ``(J, 4)`` at ``fraction`` in (0, 1), the
    shorter way round (step 3 of the module docstring)."""
    a = a / np.sqrt(np.sum(a * a, axis=-1, keepdims=True))
    b = b / np.sqrt(np.sum(b * b, axis=-1, keepdims=True))
    d = np.sum(a * b, axis=-1)
    same = np.abs(np.abs(d) - 1.0) < EPS
    b = np.where((d < 0.0)[:, None], -b, b)
    angle = np.arccos(np.clip(np.abs(d), -1.0, 1.0))
    keep_a = same | (np.abs(angle) < EPS)
    isin = 1.0 / np.where(keep_a, 1.0, np.sin(angle))
    out = a * (np.sin((1.0 - fraction) * angle) * isin)[:, None] + b * (np.sin(fraction * angle) * isin)[:, None]
    return np.where(keep_a[:, None], a, out)


def slerp_filter(rotmat: np.ndarray, ratio: float = SLERP_RATIO) -> np.ndarray:
    """The official filter over one sequence: ``rotmat (T, J, 3, 3)`` -> smoothed ``(T, J, 3, 3)`` float32, each
    joint filtered over time on its own (steps 1-4 of the module docstring)."""
    quat = rotmat_to_quaternion(rotmat)            # (T, J, 4)
    for t in range(1, quat.shape[0]):
        prev, cur = quat[t - 1], quat[t]
        flip = np.linalg.norm(prev - cur, axis=-1) > np.linalg.norm(prev + cur, axis=-1)
        quat[t] = np.where(flip[:, None], -cur, cur)
    for t in range(1, quat.shape[0]):
        quat[t] = slerp(quat[t - 1], quat[t], ratio)
    return quaternion_to_rotmat(quat).astype(np.float32)


def filter_sequences(rotmat: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                     ratio: float = SLERP_RATIO) -> np.ndarray:
    """:func:`slerp_filter` on each sequence of concatenated ``rotmat (M, 24, 3, 3)`` (sequence s at positions
    ``starts[s] .. starts[s] + lengths[s] - 1``); float32."""
    out = np.empty(np.shape(rotmat), dtype=np.float32)
    for start, n in zip(np.asarray(starts).tolist(), np.asarray(lengths).tolist()):
        out[start:start + n] = slerp_filter(rotmat[start:start + n], ratio)
    return out

"""Hand-checked cases for lib/utils/metrics.py."""
import math

import numpy as np
import torch

from lib.utils.metrics import (accel_error, centre_on_hips, centre_on_joint, mpjpe, pa_mpjpe,
                               per_vertex_error, similarity_procrustes)


def _rot_z(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _skeleton(n: int, j: int = 14, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, j, 3, generator=gen, dtype=torch.float64)


def test_similarity_copy_has_zero_pa_mpjpe():
    gt = _skeleton(5)
    rot = _rot_z(0.7)
    pred = 2.5 * gt @ rot.T + torch.tensor([0.3, -1.0, 4.0], dtype=torch.float64)
    torch.testing.assert_close(similarity_procrustes(pred, gt), gt, atol=1e-10, rtol=0)
    torch.testing.assert_close(pa_mpjpe(pred, gt), torch.zeros(5, dtype=torch.float64), atol=1e-10, rtol=0)


def test_scaled_copy_known_mpjpe():
    # pred = 2 * gt about the origin: every joint error is |gt_j|; use unit-length joints -> MPJPE 1.
    gt = torch.nn.functional.normalize(_skeleton(3), dim=-1)
    pred = 2.0 * gt
    torch.testing.assert_close(mpjpe(pred, gt), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(pa_mpjpe(pred, gt), torch.zeros(3, dtype=torch.float64), atol=1e-10, rtol=0)


def test_reflection_is_not_a_rotation():
    # A mirror image cannot be aligned by a proper rotation: PA error stays > 0 and R has det +1.
    gt = torch.tensor([[[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0], [0, 0, 0]]], dtype=torch.float64)
    pred = gt * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    aligned = similarity_procrustes(pred, gt)
    assert pa_mpjpe(pred, gt).item() > 0.1
    # the aligned shape keeps the prediction's handedness: signed volume has the opposite sign
    vol = lambda p: torch.det(p[0, :3] - p[0, 3])
    assert torch.sign(vol(aligned)) == torch.sign(vol(pred)) != torch.sign(vol(gt))


def test_known_offset_mpjpe_and_pa_invariance():
    gt = _skeleton(4)
    offset = torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)  # |offset| = 5
    pred = gt + offset
    torch.testing.assert_close(mpjpe(pred, gt), torch.full((4,), 5.0, dtype=torch.float64))
    torch.testing.assert_close(pa_mpjpe(pred, gt), torch.zeros(4, dtype=torch.float64), atol=1e-10, rtol=0)


def test_per_frame_offsets():
    gt = torch.zeros(3, 2, 3)
    pred = gt.clone()
    pred[0, :, 0] = 1.0                    # frame 0: both joints off by 1
    pred[1, 0, 1] = 2.0                    # frame 1: one joint off by 2 -> mean 1
    pred[2, 1] = torch.tensor([2.0, 3.0, 6.0])  # frame 2: one joint off by 7 -> mean 3.5
    torch.testing.assert_close(mpjpe(pred, gt), torch.tensor([1.0, 1.0, 3.5]))
    torch.testing.assert_close(per_vertex_error(pred, gt), torch.tensor([1.0, 1.0, 3.5]))


def test_pa_mpjpe_matches_numpy_reference():
    # Reference: the textbook single-frame Umeyama solution in numpy.
    pred, gt = _skeleton(6, seed=1), _skeleton(6, seed=2)
    out = similarity_procrustes(pred, gt).numpy()
    for n in range(6):
        x = pred[n].numpy() - pred[n].numpy().mean(0)
        y = gt[n].numpy() - gt[n].numpy().mean(0)
        u, s, vt = np.linalg.svd(x.T @ y)
        d = np.sign(np.linalg.det(vt.T @ u.T))
        rot = vt.T @ np.diag([1, 1, d]) @ u.T
        scale = np.trace(rot @ x.T @ y) / (x ** 2).sum()
        ref = scale * x @ rot.T + gt[n].numpy().mean(0)
        np.testing.assert_allclose(out[n], ref, atol=1e-10)


def test_float32_inputs_keep_dtype():
    pred, gt = _skeleton(2).float(), _skeleton(2, seed=3).float()
    assert pa_mpjpe(pred, gt).dtype == torch.float32
    assert similarity_procrustes(pred, gt).shape == (2, 14, 3)


def test_constant_velocity_has_zero_accel_error():
    t = torch.arange(10, dtype=torch.float64)[:, None, None]
    gt = _skeleton(1) + 0.1 * t * torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    pred = _skeleton(1, seed=5) + 0.3 * t  # another shape, another constant velocity
    err = accel_error(pred, gt)
    assert err.shape == (8,)
    torch.testing.assert_close(err, torch.zeros(8, dtype=torch.float64), atol=1e-12, rtol=0)


def test_accel_error_single_spike():
    # One joint jumps by 1 at frame 3 only: second differences 1, -2, 1 at t = 2, 3, 4.
    gt = torch.zeros(7, 2, 3)
    pred = gt.clone()
    pred[3, 0, 0] = 1.0
    expected = torch.tensor([0.0, 0.5, 1.0, 0.5, 0.0])  # t = 1..5, mean over the 2 joints
    torch.testing.assert_close(accel_error(pred, gt), expected)
    valid = torch.tensor([True, True, False, True, True, True, False])
    # interior frames t = 1..5 with valid[t]: 1, 3, 4, 5 (frame 6 would be an end frame anyway)
    torch.testing.assert_close(accel_error(pred, gt, valid), torch.tensor([0.0, 1.0, 0.5, 0.0]))


def test_centring():
    joints = torch.zeros(1, 14, 3)
    joints[0, 2] = torch.tensor([1.0, 0.0, 0.0])
    joints[0, 3] = torch.tensor([3.0, 2.0, 0.0])
    joints[0, 13] = torch.tensor([2.0, 5.0, 1.0])
    out = centre_on_hips(joints)
    torch.testing.assert_close(out[0, 13], torch.tensor([0.0, 4.0, 1.0]))
    torch.testing.assert_close(out[0, 2] + out[0, 3], torch.zeros(3))
    out = centre_on_joint(joints, 13)
    torch.testing.assert_close(out[0, 13], torch.zeros(3))
    torch.testing.assert_close(out[0, 0], torch.tensor([-2.0, -5.0, -1.0]))

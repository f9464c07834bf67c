"""Each GLoT loss term against a value worked out by hand on tiny tensors.

Setup shared by the tests: T = 16 frames, the global branch masks frames 0-7, the local branch sees frames
7, 8, 9. Predictions are all zero, so every error is the ground truth itself. Element counts used below:
global 2D 16*49*2 = 1568, local 2D 3*49*2 = 294; 3D (14 LSP joints) global 16*14*3 = 672, local 3*42 = 126;
pose 24*9 = 216 per frame; shape 10 per frame.
"""
import math

import pytest
import torch

from lib.train.loss import GLoTLoss

T = 16
W = dict(kp_2d_weight=300.0, kp_3d_weight=200.0, pose_weight=60.0, shape_weight=0.06,
         motion_2d_weight=10.0, motion_3d_weight=100.0)


def _zeros(batch: int):
    pred_g = {'kp_2d': torch.zeros(batch, T, 49, 2), 'kp_3d': torch.zeros(batch, T, 49, 3),
              'theta': torch.zeros(batch, T, 85)}
    pred_l = {k: v[:, :3].clone() for k, v in pred_g.items()}
    kp_2d = torch.zeros(batch, T, 49, 3)
    kp_2d[..., 2] = 1.0
    target = {'kp_2d': kp_2d, 'kp_3d': torch.zeros(batch, T, 49, 3), 'theta': torch.zeros(batch, T, 85),
              'w_3d': torch.zeros(batch, T), 'w_smpl': torch.zeros(batch, T)}
    mask = torch.zeros(batch, T, 1, dtype=torch.bool)
    mask[:, :8] = True
    return pred_l, pred_g, target, mask


def _loss(use_accel=False, unmasked=True):
    return GLoTLoss(**W, use_accel=use_accel, global_vel3d_unmasked=unmasked)


def _2d_case():
    pred_l, pred_g, target, mask = _zeros(1)
    target['kp_2d'][0, 0, 0] = torch.tensor([0.5, 0.0, 0.5])   # masked frame, confidence 0.5
    target['kp_2d'][0, 8, 1, 1] = 0.2                          # unmasked mid frame
    return pred_l, pred_g, target, mask


def test_kp_2d_confidence_and_mask():
    _, terms = _loss()(*_2d_case())
    # global: only frame 0 is masked -> 0.5 (conf) * 0.5^2; local: frame 8 -> 0.2^2
    assert terms['kp_2d_global'].item() == pytest.approx(0.5 * 0.25 / 1568 * 300, rel=1e-6)
    assert terms['kp_2d_local'].item() == pytest.approx(0.04 / 294 * 300, rel=1e-6)


def test_velocity_2d_uses_confidence_of_frame_t():
    _, terms = _loss()(*_2d_case())
    # global: v_0 = -0.5 (conf of frame 0 = 0.5) and v_7 = +0.2 are masked; v_8 = -0.2 is not
    assert terms['vel_2d_global'].item() == pytest.approx((0.5 * 0.25 + 0.04) / 1568 * 10, rel=1e-6)
    # local frames 7, 8, 9: y = 0, 0.2, 0 -> v = 0.2, -0.2, (pad 0)
    assert terms['vel_2d_local'].item() == pytest.approx(0.08 / 294 * 10, rel=1e-6)


def test_acceleration_2d():
    _, terms = _loss(use_accel=True)(*_2d_case())
    # global: a_1 = x_0 - 2 x_1 + x_2 = 0.5 (conf of frame 1 = 1), a_7 = 0.2; a_8 = -0.4 is unmasked
    assert terms['accel_2d_global'].item() == pytest.approx((0.25 + 0.04) / 1568 * 10, rel=1e-6)
    # local: only the middle of the 3 frames has an acceleration: -0.4
    assert terms['accel_2d_local'].item() == pytest.approx(0.16 / 294 * 10, rel=1e-6)
    assert 'vel_2d_global' not in terms


def _3d_case():
    """Clip 0: 2D-only (garbage 3D that must be ignored); clip 1: 3D-labelled."""
    pred_l, pred_g, target, mask = _zeros(2)
    target['kp_3d'][0] = 5.0
    target['w_3d'][1] = 1.0
    target['kp_3d'][1, 0, 25] = torch.tensor([0.3, 0.0, 0.0])   # LSP joint 0
    target['kp_3d'][1, 0, 27] = torch.tensor([0.2, 0.0, 0.0])   # LSP right hip: mid-hip = (0.1, 0, 0)
    target['kp_3d'][1, 8, 26] = torch.tensor([0.0, 0.0, 0.3])   # LSP joint 1, mid frame
    target['kp_3d'][1, 0, 10] = 7.0                              # not an LSP joint: ignored
    return pred_l, pred_g, target, mask


def test_kp_3d_lsp_joints_centred_on_own_hips():
    _, terms = _loss()(*_3d_case())
    # frame 0 after centring: joint 0 -> 0.2, right hip -> 0.1, the other 12 joints -> -0.1 (x only)
    assert terms['kp_3d_global'].item() == pytest.approx((0.04 + 0.01 + 12 * 0.01) / 672 * 200, rel=1e-6)
    assert terms['kp_3d_local'].item() == pytest.approx(0.09 / 126 * 200, rel=1e-6)


def test_velocity_3d_official_unmasked_quirk_and_masked_variant():
    args = _3d_case()
    # velocities (not centred): v_0 = (-0.3, -0.2) on two joints, v_7 = +0.3, v_8 = -0.3
    _, quirk = _loss(unmasked=True)(*args)
    assert quirk['vel_3d_global'].item() == pytest.approx((0.09 + 0.04 + 0.09 + 0.09) / 672 * 0.5 * 100, rel=1e-6)
    _, masked = _loss(unmasked=False)(*args)
    assert masked['vel_3d_global'].item() == pytest.approx((0.09 + 0.04 + 0.09) / 672 * 100, rel=1e-6)
    # local frames 7, 8, 9: z = 0, 0.3, 0 -> v = 0.3, -0.3, pad; no mask either way
    for terms in (quirk, masked):
        assert terms['vel_3d_local'].item() == pytest.approx(0.18 / 126 * 100, rel=1e-6)


def _smpl_case():
    pred_l, pred_g, target, mask = _zeros(2)
    target['theta'][0] = 3.0                                     # w_smpl = 0: ignored
    target['w_smpl'][1] = 1.0
    target['theta'][1, 0, 3] = math.pi / 2                       # root: 90 degrees about x
    target['theta'][1, 0, 75] = 2.0                              # beta 0
    target['theta'][1, 8, 76] = 1.0                              # beta 1, mid frame
    return pred_l, pred_g, target, mask


def test_pose_loss_on_rotation_matrices():
    _, terms = _loss()(*_smpl_case())
    # R_x(90) - I = [[0,0,0],[0,-1,-1],[0,1,-1]]: squared sum 4 on masked frame 0
    assert terms['pose_global'].item() == pytest.approx(4 / (16 * 216) * 60, rel=1e-5)
    assert terms['pose_local'].item() == 0.0


def test_shape_loss_is_mse():
    _, terms = _loss()(*_smpl_case())
    assert terms['shape_global'].item() == pytest.approx(4 / (16 * 10) * 0.06, rel=1e-6)
    assert terms['shape_local'].item() == pytest.approx(1 / (3 * 10) * 0.06, rel=1e-6)


def test_unlabelled_batch_gives_exact_zeros_and_total_is_sum():
    pred_l, pred_g, target, mask = _2d_case()
    pred_g['kp_3d'] += 1.0
    pred_g['theta'] += 0.5
    total, terms = _loss()(pred_l, pred_g, target, mask)
    for name in ('kp_3d_global', 'kp_3d_local', 'vel_3d_global', 'vel_3d_local',
                 'pose_global', 'pose_local', 'shape_global', 'shape_local'):
        assert terms[name].item() == 0.0
    assert list(terms) == _loss().term_names()
    assert total.item() == pytest.approx(sum(v.item() for v in terms.values()), rel=1e-6)


def test_gradients_reach_predictions():
    pred_l, pred_g, target, mask = _smpl_case()
    target['w_3d'][1] = 1.0
    gen = torch.Generator().manual_seed(0)
    for pred in (pred_l, pred_g):
        for key in pred:
            pred[key] = (0.1 * torch.randn(pred[key].shape, generator=gen)).requires_grad_()
    total, _ = _loss()(pred_l, pred_g, target, mask)
    total.backward()
    for pred in (pred_l, pred_g):
        assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in pred.values())

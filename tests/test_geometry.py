import math

import pytest
import torch

from lib.utils import geometry as g

RX90 = torch.tensor([[1., 0, 0], [0, 0, -1], [0, 1, 0]])
RY90 = torch.tensor([[0., 0, 1], [0, 1, 0], [-1, 0, 0]])
RZ90 = torch.tensor([[0., -1, 0], [1, 0, 0], [0, 0, 1]])
RX180 = torch.tensor([[1., 0, 0], [0, -1, 0], [0, 0, -1]])
HALF_PI = math.pi / 2


@pytest.mark.parametrize('aa, rotmat', [
    ([HALF_PI, 0, 0], RX90), ([0, HALF_PI, 0], RY90), ([0, 0, HALF_PI], RZ90),
    ([math.pi, 0, 0], RX180), ([0., 0, 0], torch.eye(3)),
])
def test_axis_angle_to_rotmat_known_rotations(aa, rotmat):
    assert torch.allclose(g.spin_rodrigues(torch.tensor([aa])), rotmat[None], atol=1e-6)
    assert torch.allclose(g.axis_angle_to_rotmat(torch.tensor([[aa]])), rotmat[None, None], atol=1e-6)


@pytest.mark.parametrize('rotmat, aa', [
    (RX90, [HALF_PI, 0, 0]), (RY90, [0, HALF_PI, 0]), (RZ90, [0, 0, HALF_PI]), (torch.eye(3), [0., 0, 0]),
])
def test_rotmat_to_axis_angle_known_rotations(rotmat, aa):
    assert torch.allclose(g.rotmat_to_axis_angle(rotmat[None]), torch.tensor([aa]), atol=1e-6)


def test_rotmat_to_axis_angle_of_180_degrees_has_angle_pi():
    aa = g.rotmat_to_axis_angle(RX180[None])[0]
    assert aa.norm().item() == pytest.approx(math.pi, abs=1e-5)
    assert torch.allclose(g.spin_rodrigues(aa[None])[0], RX180, atol=1e-5)


def test_quaternion_of_rx90():
    q = g.rotmat_to_quat(RX90[None])[0]
    s = math.sqrt(0.5)
    assert torch.allclose(q, torch.tensor([s, s, 0, 0]), atol=1e-6)
    assert torch.allclose(g.quat_to_rotmat(q[None] * 3.0)[0], RX90, atol=1e-6)  # input is normalised


def test_rot6d_interleaved_layout():
    # first column (1, 0, 0) at elements 0, 2, 4 and second column (0, 0, 1) at 1, 3, 5 -> RY(-90)^T basis
    x = torch.tensor([[1., 0, 0, 0, 0, 1]])
    r = g.rot6d_to_rotmat(x)[0]
    assert torch.allclose(r, torch.tensor([[1., 0, 0], [0, 0, -1], [0, 1, 0]]))  # = RX90
    assert torch.allclose(g.rotmat_to_rot6d(RX90), x[0])


def test_round_trips_on_random_rotations():
    torch.manual_seed(0)
    aa = torch.randn(64, 3) * 0.8
    r = g.spin_rodrigues(aa)
    assert torch.allclose(torch.det(r), torch.ones(64), atol=1e-5)
    assert torch.allclose(g.rotmat_to_axis_angle(r), aa, atol=1e-4)
    assert torch.allclose(g.rot6d_to_rotmat(g.rotmat_to_rot6d(r)), r, atol=1e-5)
    x6 = torch.randn(64, 6)
    r6 = g.rot6d_to_rotmat(x6)
    assert torch.allclose(r6 @ r6.transpose(1, 2), torch.eye(3).expand(64, 3, 3), atol=1e-5)


def test_projection_matches_hand_computation():
    # s = 1 -> tz = 2 * 5000 / 224; point (0.1, -0.2, 0) with tx = 0.05, ty = 0 projects to
    # 5000 * (0.15, -0.2) / tz / 112
    cam = torch.tensor([[1.0, 0.05, 0.0]])
    pts = torch.tensor([[[0.1, -0.2, 0.0], [0.0, 0.0, 0.0]]])
    tz = 2 * 5000 / 224
    expected = torch.tensor([[[5000 * 0.15 / tz / 112, 5000 * -0.2 / tz / 112], [5000 * 0.05 / tz / 112, 0]]])
    assert torch.allclose(g.projection(pts, cam), expected, atol=1e-6)
    assert torch.allclose(g.weak_perspective_translation(cam), torch.tensor([[0.05, 0.0, tz]]))


def test_crop_cam_to_orig_img():
    # a 100 px box centred in a 200 x 100 image: sx = s * 100 / 200, sy = s * 100 / 100, no extra shift
    cam = torch.tensor([[0.8, 0.1, -0.2]])
    bbox = torch.tensor([[100.0, 50.0, 100.0, 100.0]])
    out = g.convert_crop_cam_to_orig_img(cam, bbox, 200, 100)
    assert torch.allclose(out, torch.tensor([[0.4, 0.8, 0.1, -0.2]]))

import numpy as np
import pytest
import torch

from lib.models.smpl import SMPL, build_smpl, load_h36m_regressor, load_mean_params
from lib.core.errors import UserError
from lib.utils.geometry import rot6d_to_rotmat
from lib.utils.joints import SPIN_49
from scripts.make_synthetic_assets import EXTRA_POINTS, H36M_POINTS, REST_JOINTS


def _identity_pose(batch):
    eye = torch.eye(3).expand(batch, 24, 3, 3)
    return eye[:, 1:], eye[:, :1]


def test_rest_pose_joints_match_the_designed_skeleton(make_cfg):
    smpl = build_smpl(make_cfg())
    body_pose, orient = _identity_pose(2)
    out = smpl(betas=torch.zeros(2, 10), body_pose=body_pose, global_orient=orient)
    assert out.vertices.shape == (2, 6890, 3) and out.joints.shape == (2, 49, 3)
    joints = out.joints[0].double()
    rest = torch.from_numpy(REST_JOINTS)
    assert torch.allclose(joints[SPIN_49.index('OP MidHip')], rest[0], atol=1e-5)
    assert torch.allclose(joints[SPIN_49.index('OP LWrist')], rest[20], atol=1e-5)
    assert torch.allclose(joints[SPIN_49.index('rankle')], rest[8], atol=1e-5)
    assert torch.allclose(joints[SPIN_49.index('rhip')], torch.from_numpy(EXTRA_POINTS[0]), atol=1e-5)
    assert torch.allclose(joints[SPIN_49.index('headtop')], torch.from_numpy(EXTRA_POINTS[3]), atol=1e-5)
    assert torch.allclose(joints[SPIN_49.index('hip')], torch.from_numpy(EXTRA_POINTS[4]), atol=1e-5)
    h36m = load_h36m_regressor(make_cfg()) @ out.vertices[0]
    assert torch.allclose(h36m.double(), torch.from_numpy(H36M_POINTS), atol=1e-5)


def test_posing_rotates_the_arm_about_the_elbow(make_cfg):
    smpl = build_smpl(make_cfg())
    body_pose, orient = _identity_pose(1)
    body_pose = body_pose.clone()
    rz90 = torch.tensor([[0., -1, 0], [1, 0, 0], [0, 0, 1]])
    body_pose[0, 18 - 1] = rz90  # left elbow: the forearm turns up about +z
    joints = smpl(betas=torch.zeros(1, 10), body_pose=body_pose, global_orient=orient).joints[0].double()
    elbow, wrist = torch.from_numpy(REST_JOINTS[18]), torch.from_numpy(REST_JOINTS[20])
    expected = elbow + torch.from_numpy(rz90.numpy().astype(np.float64)) @ (wrist - elbow)
    assert torch.allclose(joints[SPIN_49.index('OP LWrist')], expected, atol=1e-5)


def test_global_orient_rotates_everything_about_the_root(make_cfg):
    smpl = build_smpl(make_cfg())
    body_pose, _ = _identity_pose(1)
    rx180 = torch.diag(torch.tensor([1., -1, -1]))[None, None]
    joints = smpl(betas=torch.zeros(1, 10), body_pose=body_pose, global_orient=rx180).joints[0].double()
    head = torch.from_numpy(REST_JOINTS[12] * [1, -1, -1])
    assert torch.allclose(joints[SPIN_49.index('OP Neck')], head, atol=1e-5)


def test_300_beta_and_chumpy_pickles_load_without_chumpy(smpl_variants_root):
    import importlib.util

    assert importlib.util.find_spec('chumpy') is None
    base = smpl_variants_root / 'base_data'
    extra = base / 'J_regressor_extra.npy'
    ref = SMPL(base, j_regressor_extra=extra)
    betas = torch.linspace(-1, 1, 10)[None]
    body_pose, orient = _identity_pose(1)
    expected = ref(betas=betas, body_pose=body_pose, global_orient=orient).vertices
    for variant in ('v1.1.0', 'chumpy'):
        model = SMPL(smpl_variants_root / 'smpl_variants' / variant, j_regressor_extra=extra)
        assert model.shapedirs.shape == (6890, 3, 10)
        out = model(betas=betas, body_pose=body_pose, global_orient=orient).vertices
        assert torch.allclose(out, expected, atol=1e-6), variant


def test_missing_smpl_file_says_where_to_get_it(tmp_path):
    with pytest.raises(UserError) as err:
        SMPL(tmp_path, j_regressor_extra=tmp_path / 'x.npy')
    msg = str(err.value)
    assert 'SMPL_NEUTRAL.pkl' in msg and 'smplify.is.tue.mpg.de' in msg
    assert 'basicModel_neutral_lbs_10_207_0_v1.0.0.pkl' in msg and str(tmp_path) in msg


def test_mean_params(make_cfg):
    params = load_mean_params(make_cfg())
    assert {k: tuple(v.shape) for k, v in params.items()} == {'pose': (144,), 'shape': (10,), 'cam': (3,)}
    root = rot6d_to_rotmat(params['pose'][:6])[0]
    assert torch.allclose(root, torch.diag(torch.tensor([1., -1, -1])), atol=1e-6)


def test_state_dict_has_the_official_smpl_buffers(make_cfg):
    keys = set(build_smpl(make_cfg()).state_dict())
    assert keys == {'faces_tensor', 'v_template', 'shapedirs', 'J_regressor', 'posedirs', 'parents',
                    'lbs_weights', 'J_regressor_extra', 'vertex_joint_selector.extra_joints_idxs'}

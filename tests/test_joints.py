import numpy as np
import pytest

from lib.utils import joints as J


def test_set_sizes():
    sizes = {k: len(v) for k, v in J.JOINT_SETS.items()}
    assert sizes == {'smpl': 24, 'spin': 49, 'common': 14, 'h36m': 17, 'mpii3d_test': 17, 'mpii3d': 28,
                     'insta': 25, 'openpose': 25, '3dpw': 14}
    assert J.SPIN_49[J.SPIN_COMMON_SLICE] == J.COMMON_14 and J.SPIN_49[J.SPIN_PELVIS] == 'hip'
    assert J.MPII3D_TEST_17[J.MPII3D_TEST_PELVIS] == 'hip'


def test_convert_kps_by_name():
    spin = np.arange(49 * 3, dtype=float).reshape(1, 49, 3)
    common = J.convert_kps(spin, 'spin', 'common')
    assert np.array_equal(common[0], spin[0, 25:39])
    h36m = J.convert_kps(spin, 'spin', 'h36m')
    assert np.array_equal(h36m[0, 0], spin[0, 39])       # hip <- SPIN pelvis
    assert np.array_equal(h36m[0, 1], spin[0, 28])       # lhip
    back = J.convert_kps(common, 'common', 'spin')
    assert np.array_equal(back[0, 25:39], spin[0, 25:39]) and not back[0, :25].any()
    # H36M_TO_J14 reorders the 17 H36M joints into the 14 common ones
    assert [J.H36M_17[i] for i in J.H36M_TO_J14] == list(J.COMMON_14)
    with pytest.raises(ValueError, match='unknown joint format'):
        J.convert_kps(spin, 'spin', 'coco')


def test_smpl_54_map_agrees_with_names():
    # the OpenPose and LSP joints taken from kinematic joints are the right SMPL joints
    smpl_of = {'OP MidHip': 0, 'OP RHip': 2, 'OP LKnee': 4, 'OP RWrist': 21, 'rankle': 8, 'lshoulder': 16,
               'OP Neck': 12}
    for name, smpl_index in smpl_of.items():
        assert J.SMPL_54_TO_SPIN_49[J.SPIN_49.index(name)] == smpl_index
    assert J.SMPL_54_TO_SPIN_49[J.SPIN_49.index('rhip')] == 45 and J.SMPL_54_TO_SPIN_49[38] == 48


def test_ancestors_follow_the_smpl_tree():
    assert J.smpl_ancestors(0) == []
    assert J.smpl_ancestors(4) == [0, 1]
    assert J.smpl_ancestors(15) == [0, 3, 6, 9, 12]
    assert J.smpl_ancestors(23) == [0, 3, 6, 9, 14, 17, 19, 21]

"""Joint orders and the conversions between them: the one place they are defined.

Every joint set is a tuple of names. Conversions match joints *by name* (a joint missing from the source
becomes zeros), exactly like the official ``convert_kps``; index maps used on hot paths are derived from
these tuples once, at import.

Sets (names as the official release spells them, so converted arrays are identical):

- ``SMPL_24``: the 24 SMPL kinematic joints, with ``SMPL_PARENTS`` (root has parent -1).
- ``SPIN_49``: SPIN/VIBE/TCMR 49 joints: 25 OpenPose body joints, the 14 LSP "common" joints, then
  pelvis, thorax, spine, jaw, head and five face joints. ``SMPL_54_TO_SPIN_49`` maps the SMPL layer's 54 raw
  joints (24 kinematic + 21 smplx vertex joints + 9 ``J_regressor_extra`` rows) onto them.
- ``COMMON_14``: the LSP 14 joints (evaluation joints for 3DPW and Human3.6M); pelvis = mean of 2 and 3.
- ``H36M_17``: the order of ``J_regressor_h36m.npy`` rows; ``H36M_TO_J17`` / ``H36M_TO_J14`` reorder them.
- ``MPII3D_TEST_17``: MPI-INF-3DHP test-set joints; pelvis is index 14.
- ``MPII3D_28``: MPI-INF-3DHP training annotation (``annot.mat``) joints.
- ``INSTA_25``: InstaVariety 2D keypoints (OpenPose style plus head top).
- ``OPENPOSE_25``: OpenPose BODY_25 (the first 25 SPIN joints).
- ``THREEDPW_14``: the 14 joints the 3DPW preprocessing reads out of the OpenPose-18 ``poses2d``.
"""
from __future__ import annotations

import numpy as np

SMPL_24 = (
    'hips', 'leftUpLeg', 'rightUpLeg', 'spine', 'leftLeg', 'rightLeg', 'spine1', 'leftFoot', 'rightFoot',
    'spine2', 'leftToeBase', 'rightToeBase', 'neck', 'leftShoulder', 'rightShoulder', 'head', 'leftArm',
    'rightArm', 'leftForeArm', 'rightForeArm', 'leftHand', 'rightHand', 'leftHandIndex1', 'rightHandIndex1',
)
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

OPENPOSE_25 = (
    'OP Nose', 'OP Neck', 'OP RShoulder', 'OP RElbow', 'OP RWrist', 'OP LShoulder', 'OP LElbow', 'OP LWrist',
    'OP MidHip', 'OP RHip', 'OP RKnee', 'OP RAnkle', 'OP LHip', 'OP LKnee', 'OP LAnkle', 'OP REye', 'OP LEye',
    'OP REar', 'OP LEar', 'OP LBigToe', 'OP LSmallToe', 'OP LHeel', 'OP RBigToe', 'OP RSmallToe', 'OP RHeel',
)
COMMON_14 = (
    'rankle', 'rknee', 'rhip', 'lhip', 'lknee', 'lankle', 'rwrist', 'relbow', 'rshoulder', 'lshoulder',
    'lelbow', 'lwrist', 'neck', 'headtop',
)
SPIN_49 = OPENPOSE_25 + COMMON_14 + (
    'hip', 'thorax', 'Spine (H36M)', 'Jaw (H36M)', 'Head (H36M)', 'nose', 'leye', 'reye', 'lear', 'rear',
)
H36M_17 = (
    'hip', 'lhip', 'lknee', 'lankle', 'rhip', 'rknee', 'rankle', 'Spine (H36M)', 'neck', 'Head (H36M)',
    'headtop', 'lshoulder', 'lelbow', 'lwrist', 'rshoulder', 'relbow', 'rwrist',
)
MPII3D_TEST_17 = (
    'headtop', 'neck', 'rshoulder', 'relbow', 'rwrist', 'lshoulder', 'lelbow', 'lwrist', 'rhip', 'rknee',
    'rankle', 'lhip', 'lknee', 'lankle', 'hip', 'Spine (H36M)', 'Head (H36M)',
)
MPII3D_28 = (
    'spine3', 'spine4', 'spine2', 'Spine (H36M)', 'hip', 'neck', 'Head (H36M)', 'headtop', 'left_clavicle',
    'lshoulder', 'lelbow', 'lwrist', 'left_hand', 'right_clavicle', 'rshoulder', 'relbow', 'rwrist',
    'right_hand', 'lhip', 'lknee', 'lankle', 'left_foot', 'left_toe', 'rhip', 'rknee', 'rankle', 'right_foot',
    'right_toe',
)
INSTA_25 = (
    'OP RHeel', 'OP RKnee', 'OP RHip', 'OP LHip', 'OP LKnee', 'OP LHeel', 'OP RWrist', 'OP RElbow',
    'OP RShoulder', 'OP LShoulder', 'OP LElbow', 'OP LWrist', 'OP Neck', 'headtop', 'OP Nose', 'OP LEye',
    'OP REye', 'OP LEar', 'OP REar', 'OP LBigToe', 'OP RBigToe', 'OP LSmallToe', 'OP RSmallToe', 'OP LAnkle',
    'OP RAnkle',
)
THREEDPW_14 = (
    'nose', 'thorax', 'rshoulder', 'relbow', 'rwrist', 'lshoulder', 'lelbow', 'lwrist', 'rhip', 'rknee',
    'rankle', 'lhip', 'lknee', 'lankle',
)

JOINT_SETS = {
    'smpl': SMPL_24, 'spin': SPIN_49, 'common': COMMON_14, 'h36m': H36M_17, 'mpii3d_test': MPII3D_TEST_17,
    'mpii3d': MPII3D_28, 'insta': INSTA_25, 'openpose': OPENPOSE_25, '3dpw': THREEDPW_14,
}

# Raw joints of the SMPL layer, in order: 24 kinematic joints (0-23), smplx's 21 vertex joints (24-44:
# nose, reye, leye, rear, lear, LBigToe, LSmallToe, LHeel, RBigToe, RSmallToe, RHeel, 10 fingertips),
# then the 9 rows of J_regressor_extra (45-53: rhip, lhip, neck (LSP), headtop (LSP), pelvis (MPII),
# thorax (MPII), spine (H36M), jaw (H36M), head (H36M)). Entry i is the raw joint that SPIN joint i takes.
SMPL_54_TO_SPIN_49 = (
    24, 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4, 7, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
    8, 5, 45, 46, 4, 7, 21, 19, 17, 16, 18, 20, 47, 48,
    49, 50, 51, 52, 53, 24, 26, 25, 28, 27,
)
NUM_EXTRA_JOINTS = 9

H36M_TO_J17 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9)
H36M_TO_J14 = H36M_TO_J17[:14]

# Index ranges of named subsets inside SPIN_49.
SPIN_COMMON_SLICE = slice(25, 39)   # the 14 LSP joints, in COMMON_14 order
SPIN_PELVIS = 39                    # 'hip' (MPII pelvis): root used to centre H36M/MPI-INF-3DHP 3D joints
SPIN_SMPL_ROOT = 8                  # 'OP MidHip' = SMPL kinematic joint 0 (the pelvis, root of the skeleton)
COMMON_LHIP, COMMON_RHIP = 3, 2      # pelvis of the 14-joint set = mean of these two
MPII3D_TEST_PELVIS = 14


def joint_names(fmt: str) -> tuple[str, ...]:
    """Names of joint set ``fmt`` (a key of ``JOINT_SETS``)."""
    try:
        return JOINT_SETS[fmt]
    except KeyError:
        raise ValueError(f"unknown joint format '{fmt}'; known: {', '.join(JOINT_SETS)}") from None


def perm_indices(src: str, dst: str) -> list[int]:
    """Indices into ``src`` of the ``dst`` joints that ``src`` has, in ``dst`` order (official get_perm_idxs)."""
    src_names = joint_names(src)
    return [src_names.index(name) for name in joint_names(dst) if name in src_names]


def convert_kps(joints: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Re-order joints from format ``src`` to ``dst`` by name; joints ``src`` lacks are zero.

    Args:
        joints: (N, J_src, C) array, any C (2D with confidence, or 3D).
    Returns:
        (N, J_dst, C) float64 array (the official function's dtype).
    """
    src_names, dst_names = joint_names(src), joint_names(dst)
    if joints.shape[1] != len(src_names):
        raise ValueError(f"convert_kps: expected {len(src_names)} '{src}' joints, got array of shape {joints.shape}")
    out = np.zeros((joints.shape[0], len(dst_names), joints.shape[2]))
    for dst_idx, name in enumerate(dst_names):
        if name in src_names:
            out[:, dst_idx] = joints[:, src_names.index(name)]
    return out


def smpl_ancestors(joint: int) -> list[int]:
    """Ancestors of SMPL joint ``joint``, root first (``smpl_ancestors(4) == [0, 1]``)."""
    chain = []
    parent = SMPL_PARENTS[joint]
    while parent != -1:
        chain.append(parent)
        parent = SMPL_PARENTS[parent]
    return chain[::-1]

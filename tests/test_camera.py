"""Camera-space translation: hand-checked numbers, the weak-perspective equivalence, and a generated video."""
import numpy as np
import pytest

from lib.demo.camera import camera_outputs, trans_cam_from_orig_cam
from lib.vis.camera import focal_length, principal_point
from lib.vis.renderer import Mesh, MeshRenderer, project
from lib.vis.video import FrameReader
from lib.models.smpl import SMPL
from lib.utils.joints import SMPL_54_TO_SPIN_49, SPIN_SMPL_ROOT
from scripts.make_synthetic_video import background, body_vertices, make_synthetic_video

WIDTH, HEIGHT, FRAMES = 320, 240, 6


def _weak(points, cam, width, height):
    """The official image camera, written out: u = (1 + sx (X + tx)) W/2, v = (1 + sy (Y + ty)) H/2."""
    sx, sy, tx, ty = cam
    return np.stack([(1 + sx * (points[..., 0] + tx)) * width / 2, (1 + sy * (points[..., 1] + ty)) * height / 2], -1)


def test_hand_checked_translation_and_defaults():
    assert focal_length(0.0, 320, 240) == 400.0 and focal_length(1000.0, 320, 240) == 1000.0
    np.testing.assert_array_equal(principal_point(320, 240), [160, 120])
    # sx = 0.5 of a 320-wide image at f = 400: depth 2 * 400 / (0.5 * 320) = 5 m at the root, root 0.1 m deep.
    trans = trans_cam_from_orig_cam(np.array([[0.5, 0.5 * 320 / 240, 0.2, -0.3]]), np.array([[0.0, 0.0, 0.1]]),
                                    400.0, 320)
    np.testing.assert_allclose(trans, [[0.2, -0.3, 4.9]])
    assert SMPL_54_TO_SPIN_49[SPIN_SMPL_ROOT] == 0   # joint 8 of the 49 is the SMPL pelvis


@pytest.mark.parametrize('width, height', [(320, 240), (240, 320), (1920, 1080)])
def test_pinhole_matches_orig_cam_at_the_root_for_any_image_shape(width, height):
    rng = np.random.default_rng(width)
    n = 5
    joints = rng.normal(0, 0.4, (n, 49, 3))
    box = rng.uniform(0.3, 0.9, n) * min(width, height)            # scaled square box side, pixels
    s = rng.uniform(0.6, 1.1, n)                                      # crop camera scale
    orig_cam = np.stack([s * box / width, s * box / height, rng.normal(0, 0.5, n), rng.normal(0, 0.5, n)], 1)
    out = camera_outputs(joints.astype(np.float32), orig_cam, width, height, 0.0)
    assert set(out) == {'trans_cam', 'focal_length', 'principal_point', 'joints2d_img'}
    assert out['trans_cam'].shape == (n, 3) and out['joints2d_img'].shape == (n, 49, 2)
    weak = np.stack([_weak(joints[i], orig_cam[i], width, height) for i in range(n)])
    root = SPIN_SMPL_ROOT
    np.testing.assert_allclose(out['joints2d_img'][:, root], weak[:, root], atol=1e-3)
    # Everywhere else the pinhole scales the weak-perspective offsets from the principal point by d / (d + dz),
    # dz the depth relative to the root.
    depth = out['trans_cam'][:, 2] + joints[:, root, 2]
    np.testing.assert_allclose(depth, 2 * out['focal_length'] / (orig_cam[:, 0] * width), rtol=1e-5)
    ratio = depth[:, None] / (depth[:, None] + joints[..., 2] - joints[:, root:root + 1, 2])
    centre = out['principal_point']
    np.testing.assert_allclose(out['joints2d_img'], centre + (weak - centre) * ratio[..., None], atol=1e-3)


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_generated_video_pinhole_lands_on_the_person(synthetic_root, tmp_path):
    """The true weak-perspective cameras of a generated video, turned into trans_cam: the pinhole puts the root
    on the same pixel, the silhouette at the same size, and draws the body where the video shows it."""
    video = make_synthetic_video(tmp_path / 'walk.mp4', synthetic_root, FRAMES, WIDTH, HEIGHT)
    (verts,), faces = body_vertices(synthetic_root, FRAMES)
    smpl = SMPL(synthetic_root / 'base_data', j_regressor_extra=synthetic_root / 'base_data' / 'J_regressor_extra.npy')
    root = (smpl.J_regressor[0] @ smpl.v_template).double().numpy()   # the pelvis does not move with the pose
    cams, boxes = video.cams[0], video.boxes[0]
    focal = focal_length(0.0, WIDTH, HEIGHT)
    trans = trans_cam_from_orig_cam(cams, np.tile(root, (FRAMES, 1)), focal, WIDTH)
    weak_renderer = MeshRenderer(faces, WIDTH, HEIGHT)
    pinhole_renderer = MeshRenderer(faces, WIDTH, HEIGHT, focal_length=focal)
    frames = list(FrameReader(video.path))
    overlap = []
    for i in range(FRAMES):
        root_weak, _ = project(root[None], cams[i], WIDTH, HEIGHT)
        root_pinhole, _ = project(root[None], trans[i], WIDTH, HEIGHT, focal_length=focal)
        assert np.abs(root_pinhole - root_weak).max() < 1e-6
        uv, _ = project(verts[i], trans[i], WIDTH, HEIGHT, focal_length=focal)
        size = uv.max(0) - uv.min(0)
        np.testing.assert_allclose(size, boxes[i, 2:] - boxes[i, :2], rtol=0.04)  # measured: up to 2.5 %
        weak = weak_renderer.render(np.zeros((HEIGHT, WIDTH, 3), np.uint8), [Mesh(verts[i], cams[i])]).any(2)
        pinhole = pinhole_renderer.render(np.zeros((HEIGHT, WIDTH, 3), np.uint8), [Mesh(verts[i], trans[i])]).any(2)
        person = np.abs(frames[i].astype(int) - background(WIDTH, HEIGHT)).max(2) > 30
        overlap.append((_iou(weak, pinhole), _iou(person, pinhole)))
    # Off the optical axis, parts nearer or farther than the root shift by (distance from the image centre) x
    # dz / d: the swinging legs (+-0.3 m at d = 3.9 m) move a few pixels as the body walks to the image side.
    # Measured IoU, pinhole vs weak render: 0.87-0.95 (mean 0.93); pinhole vs the video's person: 0.83-0.90.
    overlap = np.array(overlap)
    assert overlap[:, 0].min() > 0.85 and overlap[:, 0].mean() > 0.9, overlap
    assert overlap[:, 1].min() > 0.8 and overlap[:, 1].mean() > 0.85, overlap

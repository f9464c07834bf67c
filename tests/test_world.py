"""Camera rotation from the background and the world frame (lib/demo/world.py), on generated tracks and videos."""
import logging
from types import SimpleNamespace

import cv2
import joblib
import numpy as np
import pygltflib
import pytest
import torch

from lib.core.config import load_config
from lib.demo.pipeline import DemoOptions, run_demo
from lib.demo.world import (ONLINE_UP_SAMPLES, CameraMotion, OnlineWorld, add_world_keys, estimate_camera_motion,
                            fit_rotation, kabsch, levelling, report_failures, rotation_angle_deg, slerp, up_direction,
                            world_cam_R)
from lib.models import build_model, save_checkpoint
from lib.utils.geometry import axis_angle_to_rotmat
from scripts.make_synthetic_video import PAN_WALKERS, make_panning_video
from test_demo import CONFIG, SMALL_MODEL   # the small GLoT of the demo tests

FRAMES, WIDTH, HEIGHT = 100, 240, 180


def _rot(axis_angle):
    return axis_angle_to_rotmat(torch.tensor(axis_angle, dtype=torch.float64)[None]).numpy()[0]


def _frames(path):
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


@pytest.fixture(scope='module')
def panning(synthetic_root, tmp_path_factory):
    """A 100-frame video panning 32 degrees (and tilting 5), decoded frames, true boxes per frame."""
    video = make_panning_video(tmp_path_factory.mktemp('pan') / 'pan.mp4', synthetic_root, FRAMES, WIDTH, HEIGHT,
                               pan_deg=32.0, tilt_deg=5.0)
    boxes = [np.array([b[f] for b in video.boxes]) for f in range(FRAMES)]
    return video, _frames(video.path), boxes


def _errors(motion, video):
    truth = video.cam_R @ video.cam_R[0].T                 # rotation from the first frame, b_t = R_t b_0
    return rotation_angle_deg(motion.rotations @ np.swapaxes(truth, 1, 2))


def test_kabsch_and_ransac_recover_a_rotation_despite_outliers():
    rng = np.random.default_rng(0)
    rotation = _rot([0.1, -0.3, 0.05])
    a = rng.normal(size=(200, 3))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = a @ rotation.T
    assert np.abs(kabsch(a, b) - rotation).max() < 1e-12
    b[:60] = rng.normal(size=(60, 3))                      # 30 % tracks on moving things
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    fitted, inliers = fit_rotation(a, b, 1e-3, np.random.default_rng(0))
    assert np.abs(fitted - rotation).max() < 1e-12
    assert inliers[60:].all() and not inliers[:60].any()
    assert rotation_angle_deg(rotation) == pytest.approx(np.degrees(np.linalg.norm([0.1, -0.3, 0.05])))


def test_slerp_goes_the_short_way_at_constant_speed():
    r0, r1 = _rot([0.0, 0.2, 0.0]), _rot([0.0, 0.8, 0.0])
    mid = slerp(r0, r1, np.array([0.0, 0.5, 1.0]))
    assert np.allclose(mid, [r0, _rot([0.0, 0.5, 0.0]), r1], atol=1e-12)


def test_panning_video_rotation_within_one_degree_at_every_frame(panning):
    video, frames, boxes = panning
    motion = estimate_camera_motion(frames, boxes, WIDTH, HEIGHT, video.focal)
    assert rotation_angle_deg(video.cam_R[-1] @ video.cam_R[0].T) > 32.0
    errors = _errors(motion, video)
    assert errors.max() < 1.0, errors.max()
    assert not motion.failed.any() and motion.moving


def test_static_camera_stays_at_the_identity(synthetic_root, tmp_path):
    video = make_panning_video(tmp_path / 'static.mp4', synthetic_root, FRAMES, WIDTH, HEIGHT, pan_deg=0.0,
                               tilt_deg=0.0)
    motion = estimate_camera_motion(_frames(video.path), [np.array([b[f] for b in video.boxes])
                                                          for f in range(FRAMES)], WIDTH, HEIGHT, video.focal)
    assert rotation_angle_deg(motion.rotations).max() < 0.5
    assert not motion.moving


@pytest.mark.parametrize('kind', ['textureless', 'occluded'])
def test_lost_background_is_interpolated_and_named_once(panning, caplog, kind):
    """Frames 40-49 flat grey, or hidden by a box over the whole frame: one warning naming 40-49, the
    rotation interpolated there (the tracker finds the background again straight from frame 39)."""
    video, frames, boxes = panning
    frames, boxes = list(frames), list(boxes)
    for f in range(40, 50):
        if kind == 'textureless':
            frames[f] = np.full_like(frames[f], 128)
        else:
            boxes[f] = np.array([[0.0, 0.0, WIDTH, HEIGHT]])
    with caplog.at_level(logging.WARNING, logger='lib.demo.world'):
        motion = estimate_camera_motion(frames, boxes, WIDTH, HEIGHT, video.focal)
        report_failures(motion)
    assert np.nonzero(motion.failed)[0].tolist() == list(range(40, 50))
    assert _errors(motion, video).max() < 1.0
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and 'frames 40-49 (of 100' in warnings[0] and 'interpolated' in warnings[0]


def test_no_background_at_all_holds_the_identity(caplog):
    frames = [np.full((HEIGHT, WIDTH, 3), 90, dtype=np.uint8)] * 12
    motion = estimate_camera_motion(frames, [np.zeros((0, 5))] * 12, WIDTH, HEIGHT, 300.0)
    with caplog.at_level(logging.WARNING, logger='lib.demo.world'):
        report_failures(motion)
    assert motion.failed.all() and np.allclose(motion.rotations, np.eye(3))
    assert 'frames 0-11 (of 12' in caplog.records[0].getMessage() and 'held' in caplog.records[0].getMessage()


def _person(frames, torso_cam, orient, pelvis_smpl, trans_cam):
    joints = np.zeros((len(frames), 49, 3))
    joints[:, 8] = pelvis_smpl
    joints[:, 1] = pelvis_smpl + torso_cam
    pose = np.zeros((len(frames), 72))
    pose[:, :3] = orient
    return SimpleNamespace(frame_ids=np.asarray(frames), joints3d=joints.astype(np.float32),
                           pose=pose.astype(np.float32), trans_cam=np.asarray(trans_cam, dtype=np.float32))


def test_world_frame_is_levelled_by_the_torsos_and_keys_are_consistent():
    """A camera tilted 20 degrees down (about x) at frame 0 and panning: upright people's torsos level the
    world; the world keys undo the camera rotation exactly."""
    tilt = _rot([-np.radians(20.0), 0.0, 0.0])             # world-to-camera of frame 0 (x_cam = tilt x_world)
    pans = np.array([_rot([0.0, a, 0.0]) for a in np.radians([0.0, 10.0, 20.0])])
    true_cam_R = np.array([tilt @ p for p in pans])        # world-to-camera per frame
    relative = true_cam_R @ true_cam_R[0].T                # what the tracker measures
    up_world = np.array([0.0, -0.5, 0.0])                  # a 0.5 m torso, upright (y down)
    pelvis_world = np.array([[0.0, 0.6, 4.0], [0.5, 0.6, 4.0], [1.0, 0.6, 4.0]])
    trans_cam = np.einsum('nij,nj->ni', true_cam_R, pelvis_world)
    person = _person([0, 1, 2], np.einsum('nij,j->ni', true_cam_R, up_world), [np.pi, 0, 0],
                     np.zeros(3), trans_cam)
    results = {1: person}
    up = up_direction(results, relative)
    assert np.allclose(up, tilt @ [0, -1, 0], atol=1e-6)
    assert np.allclose(levelling(up) @ tilt @ [0, 1, 0], [0, 1, 0], atol=1e-6)
    cam_R = world_cam_R(results, relative)
    assert np.allclose(cam_R, true_cam_R, atol=1e-6)
    assert np.allclose(add_world_keys(results, relative), true_cam_R, atol=1e-6)
    assert np.allclose(person.trans_world, pelvis_world, atol=1e-5)
    assert np.allclose(person.cam_R, true_cam_R, atol=1e-6)
    orient_world = axis_angle_to_rotmat(torch.from_numpy(person.global_orient_world.astype(np.float64))).numpy()
    assert np.allclose(true_cam_R @ orient_world, _rot([np.pi, 0, 0]), atol=1e-5)


def test_disagreeing_torsos_keep_the_first_frame_axes(caplog):
    rng = np.random.default_rng(0)
    torsos = rng.normal(size=(30, 3))
    results = {1: _person(np.arange(30), torsos, [0, 0, 0], np.zeros(3), np.zeros((30, 3)))}
    with caplog.at_level(logging.WARNING, logger='lib.demo.world'):
        cam_R = world_cam_R(results, np.tile(np.eye(3), (30, 1, 1)))
    assert np.allclose(cam_R, np.eye(3)) and 'not levelled' in caplog.records[0].getMessage()


def test_camera_motion_not_moving_for_identity():
    motion = CameraMotion(np.tile(np.eye(3), (5, 1, 1)), np.zeros(5, bool), np.zeros(5, int))
    assert not motion.moving


def test_online_world_is_causal_and_levels_after_enough_torsos(panning, caplog):
    """The online tracker gives the offline rotations frame by frame (no failure here, so nothing to
    interpolate); each emitted row's world keys use its frame's rotation and the running levelling, frozen
    after ONLINE_UP_SAMPLES person-frames."""
    video, frames, boxes = panning
    offline = estimate_camera_motion(frames, boxes, WIDTH, HEIGHT, video.focal)
    cfg = SimpleNamespace(CAMERA_MOTION=True, FOCAL_LENGTH=video.focal, CAMERA_MOTION_MAX_SIDE=480,
                          CAMERA_MOTION_MIN_TRACKS=20)
    world = OnlineWorld(WIDTH, HEIGHT, cfg)
    tilt = _rot([-np.radians(10.0), 0.0, 0.0])            # the first frame looks 10 degrees down
    with caplog.at_level(logging.INFO, logger='lib.demo.world'):
        for f, (frame, frame_boxes) in enumerate(zip(frames, boxes)):
            world.update(frame, frame_boxes)
            assert np.allclose(world.rotations[f], offline.rotations[f], atol=1e-12)
            rot = offline.rotations[f] @ tilt                      # true world-to-camera of an upright torso
            person = _person([f], (rot @ [0, -0.5, 0])[None], [0, 0, 0], np.zeros(3), [[0.0, 0.0, 4.0]])
            world.add_world_keys(f, {1: person})
            if f + 1 >= ONLINE_UP_SAMPLES:
                assert np.allclose(person.cam_R[0], rot, atol=1e-5)
                assert np.allclose(person.trans_world[0], rot.T @ [0, 0, 4.0], atol=1e-5)
    assert world.frozen and len(world.rotations) == 1 and not world.failed
    assert any('fixed from frame 49 on' in r.getMessage() for r in caplog.records)


def test_demo_pipeline_gives_world_keys_and_world_exports(synthetic_root, tmp_path):
    """run_demo on a short panning video (one person, true boxes, a small random GLoT): the camera stage's
    rotations from the first frame match the truth, the world keys follow cam_R, and the 'auto' exports are
    in the world frame (GLB camera animated)."""
    frames = 30
    video = make_panning_video(tmp_path / 'pan.mp4', synthetic_root, frames, 160, 120, pan_deg=12.0, tilt_deg=2.0,
                               walkers=PAN_WALKERS[:1], bbox_file=tmp_path / 'boxes.csv')
    cfg = load_config(CONFIG, ['DATA_ROOT', str(synthetic_root), 'DEVICE', 'cpu', 'DEMO.MIN_TRACK_LEN', '10',
                               'DEMO.EXPORT', "['glb']", *SMALL_MODEL])
    torch.manual_seed(0)
    save_checkpoint(tmp_path / 'glot.pth.tar', build_model(cfg))
    result = run_demo(cfg, video.path, tmp_path / 'out', DemoOptions(bbox_file=str(tmp_path / 'boxes.csv'),
                      render=False), tmp_path / 'glot.pth.tar')
    assert 'camera' in result.seconds
    (res,) = joblib.load(tmp_path / 'out' / 'pan' / 'glot_output.pkl').values()
    cam_R = res['cam_R'].astype(np.float64)
    assert res['frame_ids'].tolist() == list(range(frames))
    relative, truth = cam_R @ cam_R[0].T, video.cam_R @ video.cam_R[0].T
    assert rotation_angle_deg(relative @ np.swapaxes(truth, 1, 2)).max() < 1.0
    pelvis = res['joints3d'][:, 8].astype(np.float64) + res['trans_cam']
    np.testing.assert_allclose(res['trans_world'], np.einsum('nji,nj->ni', cam_R, pelvis), atol=1e-4)
    gltf = pygltflib.GLTF2.load_binary(str(tmp_path / 'out' / 'pan' / 'pan_glot.glb'))
    assert gltf.asset.extras['export_space'] == 'world'
    assert [c.target.path for c in gltf.animations[0].channels if c.target.node == 0] == ['rotation']

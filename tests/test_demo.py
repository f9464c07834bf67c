"""Demo: video I/O, box files, detectors, windows, and the whole pipeline on a generated video."""
import json
import logging
import shlex
import sys
from types import SimpleNamespace

import cv2
import joblib
import numpy as np
import pytest
import torch

import demo as demo_cli
from lib.core.cli import run_main
from lib.core.config import REPO_ROOT, load_config
from lib.demo.camera import CAMERA_KEYS
from lib.demo.inference import RESULT_KEYS, GLoTPredictor, demo_files, window_indices
from lib.demo.world import WORLD_KEYS
from lib.demo.pipeline import DemoOptions, build_tracks, report_camera_scale, run_demo
from lib.demo import detection
from lib.demo.detection import build_detector, read_bbox_file
from lib.core.errors import UserError
from lib.demo.tracking import square_boxes
from lib.vis import video
from lib.vis.video import IMAGE_FOLDER_FPS, FrameReader, VideoWriter
from scripts.make_synthetic_video import make_synthetic_video

FRAMES, WIDTH, HEIGHT = 32, 320, 240
# A small GLoT (same structure, fewer/narrower transformer layers) keeps the end-to-end runs fast.
SMALL_MODEL = ['MODEL.d_model', '128', 'MODEL.n_layers', '1', 'MODEL.short_n_layers', '1']
CONFIG = str(REPO_ROOT / 'configs' / 'repr_table1_3dpw.yaml')
HAS_HOG = hasattr(cv2, 'HOGDescriptor')


@pytest.fixture(scope='module')
def clip(synthetic_root, tmp_path_factory):
    """A 32-frame 320x240 video of one walking body, its true boxes (CSV) and a random small GLoT."""
    folder = tmp_path_factory.mktemp('demo')
    video = make_synthetic_video(folder / 'walk.mp4', synthetic_root, num_frames=FRAMES, width=WIDTH,
                                 height=HEIGHT, bbox_file=folder / 'boxes.csv')
    opts = ['DATA_ROOT', str(synthetic_root), 'DEVICE', 'cpu', 'DEMO.MIN_TRACK_LEN', '20', *SMALL_MODEL]
    from lib.models import build_model, save_checkpoint

    torch.manual_seed(0)
    cfg = load_config(CONFIG, opts)
    save_checkpoint(folder / 'glot.pth.tar', build_model(cfg), config=cfg.dump())   # as training stores it
    return SimpleNamespace(folder=folder, video=video, boxes=folder / 'boxes.csv', ckpt=folder / 'glot.pth.tar',
                           opts=opts)


def _cli(argv, capsys):
    """Run demo.py's main like the command line; returns (exit code, stderr). Logging handlers that main
    adds are removed again."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        with pytest.raises(SystemExit) as exit_info:
            run_main(lambda: demo_cli.main(argv))
            raise SystemExit(0)
    finally:
        for handler in set(root.handlers) - set(handlers):
            root.removeHandler(handler)
    return exit_info.value.code, capsys.readouterr().err


def _check_results(results, num_frames):
    assert results, 'no person in the results'
    for res in results.values():
        assert tuple(res) == RESULT_KEYS + ('frame_filled',) + CAMERA_KEYS + WORLD_KEYS   # official, then ours
        assert res['frame_filled'].dtype == bool and res['frame_filled'].shape == res['frame_ids'].shape
        n = len(res['frame_ids'])
        assert n >= 20 and res['frame_ids'].max() < num_frames
        shapes = {k: res[k].shape for k in RESULT_KEYS if res[k] is not None}
        assert shapes == {'pred_cam': (n, 3), 'orig_cam': (n, 4), 'verts': (n, 6890, 3), 'pose': (n, 72),
                          'betas': (n, 10), 'joints3d': (n, 49, 3), 'bboxes': (n, 4), 'frame_ids': (n,)}
        assert res['joints2d'] is None
        assert np.isfinite(res['verts']).all() and np.isfinite(res['orig_cam']).all()
        # orig_cam is the official conversion of pred_cam with the 1.2-scaled box.
        cx, h = res['bboxes'][:, 0], res['bboxes'][:, 2]
        sx = res['pred_cam'][:, 0] * h / WIDTH
        np.testing.assert_allclose(res['orig_cam'][:, 0], sx, rtol=1e-5)
        np.testing.assert_allclose(res['orig_cam'][:, 2], (cx - WIDTH / 2) / (WIDTH / 2) / sx + res['pred_cam'][:, 1],
                                   rtol=1e-4, atol=1e-4)


def _video_frames(path):
    capture = cv2.VideoCapture(str(path))
    count, size = 0, None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count, size = count + 1, frame.shape[:2]
    capture.release()
    return count, size


# ---------------------------------------------------------------------------------------------------------
# Video input / output
# ---------------------------------------------------------------------------------------------------------

def test_video_round_trip_and_image_folder(tmp_path):
    with VideoWriter(tmp_path / 'v.mp4', 12.5, (64, 48)) as writer:
        for value in (0, 60, 120, 180, 240):
            writer.write(np.full((48, 64, 3), value, np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['v.mp4']
    reader = FrameReader(tmp_path / 'v.mp4', exact_count=True)
    assert (len(reader), reader.info.fps, reader.info.width, reader.info.height) == (5, 12.5, 64, 48)
    means = [frame.mean() for frame in reader]
    np.testing.assert_allclose(means, [0, 60, 120, 180, 240], atol=6)

    folder = tmp_path / 'frames'
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f'{i:06d}.png'), np.full((10, 12, 3), 10 * i, np.uint8))
    (folder / 'notes.txt').write_text('ignored')
    reader = FrameReader(folder)
    assert (len(reader), reader.info.fps, reader.info.is_folder) == (3, IMAGE_FOLDER_FPS, True)
    assert [int(f[0, 0, 0]) for f in reader] == [0, 10, 20]


def test_truncated_video_is_read_to_its_end_with_one_warning(tmp_path, caplog):
    writer = cv2.VideoWriter(str(tmp_path / 'full.avi'), cv2.VideoWriter_fourcc(*'MJPG'), 25, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(20):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    data = (tmp_path / 'full.avi').read_bytes()
    (tmp_path / 'cut.avi').write_bytes(data[:len(data) // 2])   # the header still announces 20 frames
    with caplog.at_level(logging.WARNING, logger='lib.vis.video'):
        reader = FrameReader(tmp_path / 'cut.avi')
        assert len(reader) == 20 and not caplog.records
        decoded = len(list(reader))
        assert len(list(reader)) == decoded    # a second pass: same frames, no second warning
    assert 0 < decoded < 20
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'cut.avi'}: decoded {decoded} of the 20 frames its header announces (truncated or partly "
        f"undecodable file); continuing with the {decoded} decoded frames"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='lib.vis.video'):
        assert len(FrameReader(tmp_path / 'cut.avi', exact_count=True)) == decoded   # counted up front
    assert len(caplog.records) == 1
    with caplog.at_level(logging.WARNING, logger='lib.vis.video'):
        assert len(list(FrameReader(tmp_path / 'full.avi'))) == 20
    assert len(caplog.records) == 1


def test_video_writer_prefers_h264_and_says_once_when_it_falls_back(tmp_path, monkeypatch, caplog, capfd):
    monkeypatch.setattr(video, 'VIDEO_CODECS', ('none', 'mp4v'))     # 'none': a codec no build can open
    monkeypatch.setattr(video, '_unusable_codecs', set())
    with caplog.at_level(logging.INFO, logger='lib'):
        for name in ('a.mp4', 'b.mp4'):
            with VideoWriter(tmp_path / name, 25, (32, 32)) as writer:
                writer.write(np.full((32, 32, 3), 100, np.uint8))
            assert writer.codec == 'mp4v' and len(FrameReader(tmp_path / name, exact_count=True)) == 1
    assert caplog.messages == [f'note: {video.NO_H264_NOTE}']
    # the failed attempt's FFmpeg messages are silenced: stderr holds at most the note itself (console logging)
    assert all(video.NO_H264_NOTE in line for line in capfd.readouterr().err.splitlines())


def test_video_errors_and_atomic_writer(tmp_path):
    (tmp_path / 'empty.mp4').write_bytes(b'')
    (tmp_path / 'text.mp4').write_text('not a video')
    (tmp_path / 'no_images').mkdir()
    cv2.VideoWriter(str(tmp_path / 'zero.mp4'), cv2.VideoWriter_fourcc(*'mp4v'), 25, (64, 48)).release()
    for name in ('missing.mp4', 'empty.mp4', 'text.mp4', 'zero.mp4', 'no_images'):
        with pytest.raises(UserError) as err:
            FrameReader(tmp_path / name)
        assert '\n' not in str(err.value)
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / 'out' / 'x.mp4', 25, (32, 32)) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
            raise RuntimeError('boom')
    assert list((tmp_path / 'out').iterdir()) == []


# ---------------------------------------------------------------------------------------------------------
# Box files and detectors
# ---------------------------------------------------------------------------------------------------------

def test_bbox_file_formats_agree(tmp_path):
    rows = [(0, 10, 20, 50, 120, 0.9, 7), (0, 100, 20, 150, 120, 0.8, 8), (2, 12, 21, 52, 121, 0.7, 7)]
    (tmp_path / 'a.csv').write_text('frame,x1,y1,x2,y2,score,track_id\n'
                                    + '\n'.join(','.join(map(str, r)) for r in rows))
    (tmp_path / 'b.json').write_text(json.dumps([dict(zip(('frame', 'x1', 'y1', 'x2', 'y2', 'score', 'track_id'), r))
                                                 for r in rows]))
    (tmp_path / 'c.json').write_text(json.dumps([list(r) for r in rows]))
    (tmp_path / 'd.csv').write_text('\n'.join(','.join(map(str, r[:6])) for r in rows))
    boxes = [read_bbox_file(tmp_path / name, 4, 200, 150) for name in ('a.csv', 'b.json', 'c.json', 'd.csv')]
    for parsed in boxes:
        assert [len(d) for d in parsed.detections] == [2, 0, 1, 0]
        np.testing.assert_allclose(parsed.detections[0], [[10, 20, 50, 120, 0.9], [100, 20, 150, 120, 0.8]])
    assert [ids.tolist() for ids in boxes[0].track_ids] == [[7, 8], [], [7], []]
    assert boxes[3].track_ids is None
    demo_cfg = SimpleNamespace(FILL_GAPS=True, MIN_TRACK_LEN=2, BBOX_SMOOTH_SIGMA=0.0, STATIC_TRACK_MOTION=0.0,
                               STATIC_TRACK_FRACTION=0.9, DROP_STATIC_TRACKS=False)
    tracks = build_tracks(boxes[0].detections, demo_cfg, boxes[0].track_ids)
    assert [(t.track_id, t.frames.tolist(), t.filled.tolist()) for t in tracks] == [(7, [0, 1, 2],
                                                                                     [False, True, False])]
    np.testing.assert_allclose(tracks[0].bboxes[1], square_boxes([[11, 20.5, 51, 120.5]])[0])


@pytest.mark.parametrize('text, message', [
    ('0,10,20,50,120\n4,10,20,50,120', 'frame 4 is not a frame of the video'),
    ('0,300,20,350,120', 'outside the 200x150 video'),
    ('0,50,20,10,120', 'x2 > x1'),
    ('frame,x1,y1,x2,y2,track_id\n0,1,1,5,5,1\n1,1,1,5,5,', 'track_id on every box or on none'),
    ('0,1,1,5,5,1,3\n0,2,2,6,6,1,3', 'two boxes with the same track_id'),
    ('0,1,1,5', 'expected 5-7 values'),
    ('frame,x1,y1,x2,y2,width\n0,1,1,5,5,3', 'unknown column'),
])
def test_bbox_file_errors(tmp_path, text, message):
    (tmp_path / 'boxes.csv').write_text(text)
    with pytest.raises(UserError, match=message):
        read_bbox_file(tmp_path / 'boxes.csv', 4, 200, 150)


def test_bbox_file_missing_and_bad_json(tmp_path):
    with pytest.raises(UserError, match='not found'):
        read_bbox_file(tmp_path / 'nope.csv', 4, 200, 150)
    (tmp_path / 'bad.json').write_text('{"frame": ')
    with pytest.raises(UserError, match='not valid JSON'):
        read_bbox_file(tmp_path / 'bad.json', 4, 200, 150)


def _demo_cfg(**overrides):
    values = dict(TORCHVISION_MODEL='fasterrcnn_mobilenet_v3_large_320_fpn', DETECTOR_WEIGHTS='',
                  DOWNLOAD_WEIGHTS=False, DETECTION_THRESHOLD=0.0, HOG_HIT_THRESHOLD=0.0, HOG_MIN_HEIGHT=100,
                  HOG_PYRAMID_SCALE=1.05, DUPLICATE_OVERLAP=0.8)
    values.update(overrides)
    return SimpleNamespace(**values)


def test_torchvision_detector_only_from_local_weights(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    with pytest.raises(UserError) as err:
        build_detector('torchvision', 'cpu', _demo_cfg())
    text = str(err.value)
    assert 'fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth' in text and str(tmp_path / 'hub' / 'checkpoints') in text
    assert not (tmp_path / 'hub').exists()   # nothing was downloaded
    with pytest.raises(UserError, match='not found'):
        build_detector('torchvision', 'cpu', _demo_cfg(DETECTOR_WEIGHTS=str(tmp_path / 'none.pth')))

    model = torchvision.models.get_model('fasterrcnn_mobilenet_v3_large_320_fpn', weights=None,
                                         weights_backbone=None, num_classes=91)
    (tmp_path / 'hub' / 'checkpoints').mkdir(parents=True)
    torch.save(model.state_dict(), tmp_path / 'hub' / 'checkpoints' / 'fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth')
    detector = build_detector('auto', 'cpu', _demo_cfg(DETECTION_THRESHOLD=0.5), batch_size=2)
    assert detector.name == 'torchvision'
    assert detector.model.roi_heads.box_predictor.cls_score.weight.equal(
        model.roi_heads.box_predictor.cls_score.weight)

    # Post-processing, with the network replaced by fixed outputs: people (label 1) above the threshold.
    seen = []

    def fake_model(images):
        seen.append([tuple(im.shape) for im in images])
        return [{'boxes': torch.tensor([[1., 2., 3., 4.], [5., 6., 7., 8.], [9., 9., 19., 29.]]),
                 'labels': torch.tensor([1, 3, 1]), 'scores': torch.tensor([0.9, 0.95, 0.4])}] * len(images)

    detector.model = fake_model
    out = detector([np.zeros((6, 8, 3), np.uint8)] * 3)
    assert seen == [[(3, 6, 8)] * 2, [(3, 6, 8)]]
    assert len(out) == 3
    for dets in out:
        np.testing.assert_allclose(dets, [[1, 2, 3, 4, 0.9]], rtol=1e-6)


def _fake_download(state_dict):
    """A stand-in for torch.hub's download: writes ``state_dict`` where torchvision asked for the file."""
    def download(url, dst, hash_prefix=None, progress=True):
        torch.save(state_dict, dst)
    return download


def test_weight_download_is_opt_in_and_falls_back_to_hog(tmp_path, monkeypatch, caplog):
    import torchvision
    from urllib.error import URLError

    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    calls = []

    def offline(url, dst, hash_prefix=None, progress=True):
        calls.append(url)
        raise URLError('[Errno -3] Temporary failure in name resolution')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    assert build_detector('auto', 'cpu', _demo_cfg()).name == 'hog' and calls == []   # off: never tries
    with caplog.at_level(logging.INFO, logger='lib.demo.detection'):
        detector = build_detector('auto', 'cpu', _demo_cfg(DOWNLOAD_WEIGHTS=True))
    assert detector.name == 'hog' and len(calls) == 1
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and 'could not download fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth' in warning[0]
    assert str(tmp_path / 'hub' / 'checkpoints') in warning[0] and 'using OpenCV HOG' in warning[0]
    with pytest.raises(UserError, match='could not download'):
        build_detector('torchvision', 'cpu', _demo_cfg(DOWNLOAD_WEIGHTS=True))

    model = torchvision.models.get_model('fasterrcnn_mobilenet_v3_large_320_fpn', weights=None,
                                         weights_backbone=None, num_classes=91)
    monkeypatch.setattr(torch.hub, 'download_url_to_file', _fake_download(model.state_dict()))
    detector = build_detector('auto', 'cpu', _demo_cfg(DOWNLOAD_WEIGHTS=True))
    assert detector.name == 'torchvision'
    assert (tmp_path / 'hub' / 'checkpoints' / 'fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth').is_file()


def test_duplicate_boxes_are_merged():
    # A whole-body hit, an upper-body hit inside it, one mostly (87%) inside it, a neighbour overlapping it by
    # a quarter, a person elsewhere. IoU alone (0.4) keeps all five.
    boxes = np.array([[100, 50, 140, 170], [106, 55, 134, 110], [96, 100, 126, 150], [130, 50, 170, 170],
                      [300, 50, 340, 170]], float)
    scores = np.array([2.5, 2.0, 1.2, 1.0, 1.5])
    assert detection.non_max_suppression(boxes, scores, 0.4, 1.01).tolist() == [0, 1, 4, 2, 3]
    assert detection.non_max_suppression(boxes, scores, 0.4, 1.0).tolist() == [0, 4, 2, 3]
    assert detection.non_max_suppression(boxes, scores, 0.4, 0.8).tolist() == [0, 4, 3]
    # The better-scored box of a nested pair is the one kept.
    assert detection.non_max_suppression(boxes[:2], scores[[1, 0]], 0.4, 0.8).tolist() == [1]


@pytest.mark.skipif(not HAS_HOG, reason='this OpenCV build has no HOGDescriptor (OpenCV 5 moved it out)')
def test_hog_finds_a_60_pixel_person_in_a_768x576_frame(synthetic_root):
    from lib.vis.renderer import Mesh, MeshRenderer
    from scripts.make_synthetic_video import body_vertices, place_camera, textured_background

    (verts,), faces = body_vertices(synthetic_root, 1)
    cam, truth = place_camera(verts[0], 60.0, 400.0, 330.0, 768, 576)
    frame = MeshRenderer(faces, 768, 576).render(textured_background(768, 576), [Mesh(verts[0], cam, (0.3, 0.4, 0.8))])
    assert 59.0 < truth[3] - truth[1] < 61.0

    def found(dets):
        centre = np.abs((dets[:, [0, 1]] + dets[:, [2, 3]]) / 2 - (truth[:2] + truth[2:]) / 2).max(axis=1)
        height = (dets[:, 3] - dets[:, 1]) / (truth[3] - truth[1])
        return ((centre < 12) & (np.abs(height - 1) < 0.25)).any()

    cfg = load_config(None, [])
    (dets,) = build_detector('hog', 'cpu', cfg.DEMO)([frame])
    assert found(dets) and len(dets) == 1
    # The old setting (frames shrunk to 640 px, i.e. people from ~115 px up) missed it.
    (old,) = detection.HOGDetector(min_height=115)([frame])
    assert not found(old)


def test_hog_missing_from_opencv_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    monkeypatch.delattr(cv2, 'HOGDescriptor', raising=False)
    for kind in ('hog', 'auto'):
        with pytest.raises(UserError, match='no HOG people detector'):
            build_detector(kind, 'cpu', _demo_cfg())


@pytest.mark.skipif(not HAS_HOG, reason='this OpenCV build has no HOGDescriptor (OpenCV 5 moved it out)')
def test_hog_boxes_cover_the_body(clip):
    frames = list(FrameReader(clip.video.path))[::8]
    dets = detection.HOGDetector(min_height=64)(frames)
    for frame_dets, truth in zip(dets, clip.video.boxes[0][::8]):
        # Some detection has its centre within 15 px and its height within 15 % of the rendered body's.
        centre_error = np.abs((frame_dets[:, 0] + frame_dets[:, 2] - truth[0] - truth[2]) / 2)
        height_ratio = (frame_dets[:, 3] - frame_dets[:, 1]) / (truth[3] - truth[1])
        assert ((centre_error < 15) & (np.abs(height_ratio - 1) < 0.15)).any(), (frame_dets, truth)


# ---------------------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------------------

def _official_windows(n, seq_len=16):
    """The official FeatureDataset's (start, end) list, rebuilt from its description (official demo: one (start, end) window per frame)."""
    seq = [[i, i + seq_len - 1] for i in range(n - seq_len + 1)]
    seq = [[k, k] for k in range(seq_len // 2)] + seq + [[n - k, n - k] for k in range(seq_len // 2 - 1, 0, -1)]
    return [list(range(s, e + 1)) if s != e else [s] * seq_len for s, e in seq]


def test_window_indices():
    repeat = window_indices(30, 16, 'repeat')
    assert repeat.tolist() == _official_windows(30)
    clamp = window_indices(30, 16, 'clamp')
    assert clamp[0].tolist() == [0] * 9 + list(range(1, 8))
    assert clamp[10].tolist() == list(range(2, 18)) == repeat[10].tolist()
    assert clamp[29].tolist() == list(range(21, 30)) + [29] * 7
    assert (clamp[:, 8] == np.arange(30)).all()  # every frame is its own window's target
    short = window_indices(5, 16, 'clamp')
    assert short.shape == (5, 16) and (short[:, 8] == np.arange(5)).all()


# ---------------------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------------------

def test_demo_with_bbox_file(clip, tmp_path, capsys):
    out = tmp_path / 'out'
    code, err = _cli(['--vid_file', str(clip.video.path), '--cfg', CONFIG, '--checkpoint', str(clip.ckpt),
                      '--output_folder', str(out), '--bbox_file', str(clip.boxes), '--sideview', '--save_obj',
                      '--display', *clip.opts], capsys)
    assert code == 0, err
    folder = out / 'walk'
    results = joblib.load(folder / 'glot_output.pkl')
    _check_results(results, FRAMES)
    (res,) = results.values()
    assert res['frame_ids'].tolist() == list(range(FRAMES))
    truth = square_boxes(clip.video.boxes[0])
    # The true boxes (rounded to 0.01 px in the file), squared, smoothed over time (sigma 1 frame: the linear
    # horizontal motion is kept away from the ends, the small vertical bobbing of the walk is evened out)
    # and scaled by 1.2.
    np.testing.assert_allclose(res['bboxes'][3:-3, 0], truth[3:-3, 0], atol=0.05)
    np.testing.assert_allclose(res['bboxes'][:, 1], truth[:, 1], atol=1.0)
    np.testing.assert_allclose(res['bboxes'][:, 2:], 1.2 * truth[:, 2:], rtol=0.01)
    assert _video_frames(folder / 'walk_glot_output.mp4') == (FRAMES, (HEIGHT, 2 * WIDTH))
    assert len(list((folder / 'meshes' / f'{next(iter(results)):04d}').glob('*.obj'))) == FRAMES
    assert not [p for p in folder.rglob('*') if 'partial' in p.name]
    # the run record: log.txt starts with the command, config.yaml is the merged config
    assert (folder / 'log.txt').read_text().split('\n')[0].endswith(' command: ' + shlex.join(sys.argv))
    assert load_config(str(folder / 'config.yaml')) == load_config(CONFIG, [*clip.opts, 'DEMO.SIDEVIEW', 'True'])


@pytest.mark.skipif(not HAS_HOG, reason='this OpenCV build has no HOGDescriptor (OpenCV 5 moved it out)')
def test_demo_with_hog_and_cache(clip, tmp_path, monkeypatch):
    cfg = load_config(CONFIG, [*clip.opts, 'DEMO.HOG_MIN_HEIGHT', '64', 'DEMO.DETECTOR', 'hog'])
    predictor = GLoTPredictor(cfg, demo_files(cfg, clip.ckpt))
    options = DemoOptions()
    result = run_demo(cfg, clip.video.path, tmp_path / 'out', options, predictor=predictor)
    _check_results({tid: res.to_dict() for tid, res in result.results.items()}, FRAMES)
    truth = square_boxes(clip.video.boxes[0])
    for res in result.results.values():
        rows = res.frame_ids
        assert np.abs(res.bboxes[:, 0] - truth[rows, 0]).max() < 15
    assert _video_frames(tmp_path / 'out' / 'walk' / 'walk_glot_output.mp4') == (FRAMES, (HEIGHT, WIDTH))
    assert set(result.seconds) >= {'detection', 'tracking', 'features', 'model', 'render'}

    # A second run reuses the cached detections and features.
    monkeypatch.setattr('lib.demo.pipeline.build_detector', lambda *a, **k: pytest.fail('detector rebuilt'))
    monkeypatch.setattr(predictor, 'features', lambda *a, **k: pytest.fail('features recomputed'))
    again = run_demo(cfg, clip.video.path, tmp_path / 'out', DemoOptions(render=False),
                     predictor=predictor)
    for pid, res in result.results.items():
        np.testing.assert_allclose(again.results[pid].verts, res.verts, atol=1e-5)


def test_frame_folder_fps_and_filled_frames(clip, tmp_path, capsys, caplog):
    folder = tmp_path / 'frames'
    folder.mkdir()
    for index, frame in enumerate(FrameReader(clip.video.path)):
        cv2.imwrite(str(folder / f'{index:06d}.png'), frame)
    # The true boxes with frames 10-13 missing: one track, the four frames filled by interpolation.
    rows = [line for line in clip.boxes.read_text().splitlines()[1:] if not 10 <= int(line.split(',')[0]) <= 13]
    (tmp_path / 'gap.csv').write_text('\n'.join(rows) + '\n')
    out = tmp_path / 'out'
    with caplog.at_level(logging.INFO):
        code, err = _cli(['--vid_file', str(folder), '--cfg', CONFIG, '--checkpoint', str(clip.ckpt),
                          '--output_folder', str(out), '--bbox_file', str(tmp_path / 'gap.csv'), '--fps', '12.5',
                          *clip.opts], capsys)
    assert code == 0, err
    assert f'{FRAMES} frames, {WIDTH}x{HEIGHT}, 12.50 fps (DEMO.FPS / --fps)' in caplog.text
    assert '0 track(s) shorter than DEMO.MIN_TRACK_LEN 20 frames dropped (0 person-frames)' in caplog.text
    (res,) = joblib.load(out / 'frames' / 'glot_output.pkl').values()
    assert res['frame_ids'].tolist() == list(range(FRAMES))
    assert np.nonzero(res['frame_filled'])[0].tolist() == [10, 11, 12, 13]
    capture = cv2.VideoCapture(str(out / 'frames' / 'frames_glot_output.mp4'))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12.5)
    capture.release()
    assert FrameReader(folder).info.fps == 30.0                 # a folder's default frame rate


def test_non_positive_camera_scale_is_reported(caplog):
    results = {3: SimpleNamespace(pred_cam=np.array([[0.9, 0, 0], [-0.2, 0, 0], [0.0, 0, 0], [1.1, 0, 0]]),
                                  frame_ids=np.array([40, 41, 42, 43])),
               4: SimpleNamespace(pred_cam=np.array([[0.8, 0, 0]]), frame_ids=np.array([0]))}
    with caplog.at_level(logging.WARNING, logger='lib.demo.pipeline'):
        report_camera_scale(results)
    assert [r.getMessage() for r in caplog.records] == [
        'model: person 3: camera scale not positive in 2 of 4 frames (first at frame 41); those meshes are '
        'degenerate and do not show in the video']


def test_bad_inputs_exit_2_and_write_nothing(clip, tmp_path, capsys):
    out = tmp_path / 'out'
    base = ['--cfg', CONFIG, '--checkpoint', str(clip.ckpt), '--output_folder', str(out)]
    (tmp_path / 'empty.mp4').write_bytes(b'')
    (tmp_path / 'late.csv').write_text(f'{FRAMES},10,10,50,100\n')
    (tmp_path / 'short.csv').write_text('\n'.join(f'{f},100,30,160,220' for f in range(5)))
    video = ['--vid_file', str(clip.video.path)]
    cases = [  # (flags, trailing config overrides, expected message)
        (['--vid_file', str(tmp_path / 'missing.mp4')], [], 'input video not found'),
        (['--vid_file', str(tmp_path / 'empty.mp4')], [], 'cannot open'),
        (video + ['--bbox_file', str(tmp_path / 'late.csv')], [], f'frame {FRAMES} is not a frame of the video'),
        (video + ['--bbox_file', str(tmp_path / 'short.csv')], [], 'no person found'),
        (video + ['--bbox_file', str(clip.boxes), '--checkpoint', str(tmp_path / 'none.pth.tar')], [],
         'none.pth.tar  <- from pretrained_models/'),
        (video, ['DEMO.RENDER_MODE', 'opengl'], "DEMO.RENDER_MODE 'opengl' is not one of"),
    ]
    for flags, overrides, message in cases:
        code, err = _cli(base + flags + clip.opts + overrides, capsys)
        assert code == 2, err
        report = ('\n' + err).split('\nerror: ')     # log lines | the error line and its list of files if any
        assert len(report) == 2 and message in report[1] and 'Traceback' not in err, err
        assert not out.exists()


def test_flags_are_demo_settings(dry_entry_points, tmp_path):
    """Every behaviour flag of demo.py sets its DEMO key (after the trailing overrides); the options keep only
    the box file and what to write."""
    modules, calls = dry_entry_points
    modules['demo'].main(['--cfg', CONFIG, '--vid_file', 'v.mp4', '--detector', 'hog', '--tracker_batch_size', '4',
                          '--gender', 'male', '--export', 'glb,bvh', '--sideview', '--render_plain', '--wireframe',
                          '--fps', '12', '--bbox_file', 'b.csv', '--no_render', 'DEMO.FOCAL_LENGTH', '960',
                          'DEMO.GENDER', 'female'])
    cfg, _, _, options, kwargs = calls['demo']
    demo = cfg.DEMO
    assert (demo.DETECTOR, demo.TRACKER_BATCH_SIZE, demo.GENDER, demo.EXPORT, demo.FPS, demo.FOCAL_LENGTH) == \
        ('hog', 4, 'male', ['glb', 'bvh'], 12.0, 960.0)
    assert demo.SIDEVIEW and demo.RENDER_PLAIN and demo.WIREFRAME
    assert options == DemoOptions(bbox_file='b.csv', save_pkl=True, save_obj=False, render=False)
    modules['demo'].main(['--cfg', CONFIG, '--vid_file', 'v.mp4'])
    demo = calls['demo'][0].DEMO
    assert (demo.DETECTOR, demo.TRACKER_BATCH_SIZE, demo.GENDER, demo.EXPORT, demo.SIDEVIEW) == \
        ('auto', 12, 'neutral', [], False)


def test_our_checkpoints_need_no_cfg(clip, tmp_path, capsys, dry_entry_points):
    """Our checkpoints store their config: demo.py and evaluate.py build the model from it without --cfg; a
    checkpoint without one (an official one) asks for the YAML in one line."""
    out = tmp_path / 'out'
    machine = ['DATA_ROOT', clip.opts[1], 'DEVICE', 'cpu', 'DEMO.MIN_TRACK_LEN', '20']
    code, err = _cli(['--vid_file', str(clip.video.path), '--checkpoint', str(clip.ckpt), '--bbox_file',
                      str(clip.boxes), '--no_render', '--output_folder', str(out), *machine], capsys)
    assert code == 0, err
    cfg = load_config(str(out / 'walk' / 'config.yaml'))
    assert (cfg.MODEL.d_model, cfg.MODEL.n_layers, cfg.MODEL.short_n_layers) == (128, 1, 1)

    modules, calls = dry_entry_points
    modules['evaluate'].main(['--dataset', '3dpw', '--checkpoint', str(clip.ckpt), 'MODEL.n_layers', '1'])
    assert calls['evaluate'][0].MODEL.d_model == 128

    official = tmp_path / 'official.pth.tar'
    torch.save({'gen_state_dict': torch.load(clip.ckpt, weights_only=False)['gen_state_dict']}, official)
    for argv in (['--vid_file', str(clip.video.path), '--checkpoint', str(official)],
                 ['--vid_file', str(clip.video.path)]):
        code, err = _cli([*argv, '--output_folder', str(out), *machine], capsys)
        assert code == 2 and err.strip().splitlines()[-1].startswith('error: ') and '--cfg' in err, err
    assert 'stores no config (an official checkpoint)' in _cli(
        ['--vid_file', str(clip.video.path), '--checkpoint', str(official), *machine], capsys)[1]

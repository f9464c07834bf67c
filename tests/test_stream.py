"""Online mode: the ring-buffer windows equal the offline windows, a generated video read as a stream gives
the offline demo's results exactly seqlen // 2 frames late, and bad sources fail with one line."""
import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from lib.core.config import load_config
from lib.demo.detection import read_bbox_file
from lib.demo.inference import window_indices
from lib.demo.pipeline import DemoOptions, run_demo
from lib.demo.stream import STREAM_FILE, OnlineGLoT, StrideControl
from lib.demo.video import FrameReader
from scripts.make_synthetic_video import make_synthetic_video
from test_demo import CONFIG, SMALL_MODEL, _cli, _video_frames

FRAMES = 20


class _WindowPredictor:
    """Stands in for GLoTPredictor: a crop's 'feature' is its frame number, a 'prediction' is the frame
    numbers of the window (the real predict's first step, :func:`window_indices` over the given rows)."""

    seqlen = 16

    def __init__(self, padding):
        self.padding = padding
        self.calls = []   # people per predict_many call

    def predict_many(self, items, width, height, render_plain=False):
        self.calls.append(len(items))
        return [self.predict(features, track, width, height, render_plain, rows) for features, track, rows in items]

    def features(self, frames, tracks, progress=True):
        return {t.track_id: torch.full((1, 2048), float(frames[0])) for t in tracks}

    def predict(self, features, track, width, height, render_plain=False, rows=None):
        idx = window_indices(len(track.frames), self.seqlen, self.padding)[rows]
        return {'window': features[idx][:, :, 0].numpy(), 'frame_ids': track.frames[rows]}


@pytest.mark.parametrize('padding', ['clamp', 'repeat'])
def test_online_windows_equal_offline(padding):
    spans = {1: (0, 30), 2: (5, 12), 3: (20, 40), 4: (36, 40), 5: (3, 4)}  # frames [start, end) per track
    predictor = _WindowPredictor(padding)
    online = OnlineGLoT(predictor, 100, 100)
    outputs = []
    for t in range(40):
        tracked = [(tid, np.array([10.0, 10, 50, 90])) for tid, (a, b) in spans.items() if a <= t < b]
        out = online.push(np.array(t), tracked)
        assert (out is None) == (t < 8)
        outputs += [out] if out is not None else []
    outputs += online.flush()
    assert [o.frame for o in outputs] == list(range(40))
    assert [o.emitted_at for o in outputs] == [f + 8 for f in range(32)] + [39] * 8
    assert [o.flushed for o in outputs] == [False] * 32 + [True] * 8
    for tid, (a, b) in spans.items():
        offline = window_indices(b - a, 16, padding) + a
        for frame in range(a, b):
            person = outputs[frame].people[tid]
            assert person['frame_ids'].tolist() == [frame]
            assert person['window'][0].tolist() == offline[frame - a].tolist(), (tid, frame)
    assert [sorted(o.people) for o in outputs[:6]] == [[1], [1], [1], [1, 5], [1], [1, 2]]
    assert sorted(online.buffers) == [3, 4]  # the ended tracks were forgotten
    # GLoT once per emitted frame, for all its people in one batch
    assert predictor.calls == [len(o.people) for o in outputs]


@pytest.fixture(scope='module')
def walk(synthetic_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp('stream')
    make_synthetic_video(folder / 'walk.mp4', synthetic_root, num_frames=FRAMES, width=160, height=120,
                         body_height_px=100, bbox_file=folder / 'boxes.csv')
    opts = ['DATA_ROOT', str(synthetic_root), 'DEVICE', 'cpu', 'DEMO.MIN_TRACK_LEN', '10', *SMALL_MODEL]
    from lib.models import build_model, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(folder / 'glot.pth.tar', build_model(load_config(CONFIG, opts)))
    return SimpleNamespace(folder=folder, video=folder / 'walk.mp4', boxes=folder / 'boxes.csv',
                           ckpt=folder / 'glot.pth.tar', opts=opts)


def test_stream_equals_offline_demo(walk, tmp_path, capsys):
    settings = [*walk.opts, 'DEMO.BBOX_SMOOTH_SIGMA', '0.0']
    offline = run_demo(load_config(CONFIG, settings), walk.video, tmp_path / 'offline',
                       DemoOptions(bbox_file=str(walk.boxes), render=False), walk.ckpt)
    (reference,) = offline.results.values()
    assert reference['frame_ids'].tolist() == list(range(FRAMES))

    code, err = _cli(['--stream', str(walk.video), '--bbox_file', str(walk.boxes), '--cfg', CONFIG,
                      '--checkpoint', str(walk.ckpt), '--output_folder', str(tmp_path / 'online'), *settings,
                      'DEMO.STREAM_VERTS', 'True'], capsys)
    assert code == 0, err
    folder = tmp_path / 'online' / 'walk'
    lines = [json.loads(line) for line in (folder / STREAM_FILE).read_text().splitlines()]
    # The box file has no track ids: the online IoU tracker gives the person id 1, as the offline one.
    assert [(r['frame'], r['track_id']) for r in lines] == [(f, 1) for f in range(FRAMES)]
    assert [r['emitted_at'] - r['frame'] for r in lines if not r['flushed']] == [8] * (FRAMES - 8)
    assert [(r['frame'], r['emitted_at']) for r in lines if r['flushed']] == [(f, FRAMES - 1)
                                                                             for f in range(FRAMES - 8, FRAMES)]
    for key, atol in (('pred_cam', 1e-5), ('pose', 1e-4), ('betas', 1e-5), ('verts', 1e-5), ('orig_cam', 1e-5),
                      ('joints3d', 1e-5), ('bboxes', 0.0)):
        online = np.array([r[key] for r in lines], dtype=np.float32)
        np.testing.assert_allclose(online, reference[key], rtol=0, atol=atol, err_msg=key)
    assert all(r['latency_ms'] > 0 and r['time_s'] == r['frame'] / 25.0 for r in lines)
    assert _video_frames(folder / 'walk_glot_stream.mp4') == (FRAMES, (120, 160))


def test_stream_bad_sources_exit_2(walk, tmp_path, capsys, monkeypatch):
    (tmp_path / 'garbage.mp4').write_bytes(b'not a video at all')
    base = ['--cfg', CONFIG, '--checkpoint', str(walk.ckpt), '--output_folder', str(tmp_path / 'out'), *walk.opts]
    cases = [(['--stream', str(tmp_path / 'missing.mp4')], 'stream source not found'),
             (['--stream', str(tmp_path / 'garbage.mp4')], 'cannot read a frame from stream'),
             (['--stream', str(walk.video), '--bbox_file', str(tmp_path / 'none.csv')], 'bbox file not found')]
    for argv, message in cases:
        code, err = _cli(argv + base, capsys)
        last = err.strip().splitlines()[-1]
        assert code == 2 and last.startswith('error: ') and message in last and 'Traceback' not in err, err
    monkeypatch.setenv('WORLD_SIZE', '2')
    code, err = _cli(['--stream', str(walk.video)] + base, capsys)
    assert code == 2 and '--stream runs in one process' in err
    assert not (tmp_path / 'out').exists()


@pytest.fixture(scope='module')
def paced(walk, synthetic_root):
    """A 4-second 10 fps video of one walking body (160x120) and its true boxes, read as a live source."""
    make_synthetic_video(walk.folder / 'paced.mp4', synthetic_root, num_frames=PACED_FRAMES, width=160, height=120,
                         fps=10.0, body_height_px=100, bbox_file=walk.folder / 'paced.csv')
    return SimpleNamespace(video=walk.folder / 'paced.mp4', boxes=walk.folder / 'paced.csv')


PACED_FRAMES = 40


def test_paced_stream_strides_with_bounded_latency_and_offline_results(walk, paced, tmp_path, capsys):
    """A real paced source (the file read at its 10 fps by the reader thread): every k-th frame is processed
    with k from the measured processing time, each result arrives within (seqlen // 2 + 2) x k frame intervals,
    and equals the offline demo's on the frames that were processed."""
    settings = [*walk.opts, 'DEMO.BBOX_SMOOTH_SIGMA', '0.0', 'DEMO.MIN_TRACK_LEN', '1', 'DEMO.TRACK_MIN_HITS', '1']
    code, err = _cli(['--stream', str(paced.video), '--realtime', '--bbox_file', str(paced.boxes), '--cfg', CONFIG,
                      '--checkpoint', str(walk.ckpt), '--output_folder', str(tmp_path / 'online'), '--no_render',
                      *settings, 'DEMO.STREAM_VERTS', 'True'], capsys)
    assert code == 0, err
    lines = [json.loads(line) for line in (tmp_path / 'online' / 'paced' / STREAM_FILE).read_text().splitlines()]
    frames = np.array([r['frame'] for r in lines])
    strides = np.array([r['stride'] for r in lines])
    assert [r['track_id'] for r in lines] == [1] * len(lines) and (np.diff(frames) > 0).all()
    assert frames[0] == 0 and all(r['time_s'] == r['frame'] / 10.0 for r in lines)
    assert f'of {PACED_FRAMES} frames processed in' in err and 'stride' in err and 'arrival -> result' in err
    # The stride rose unless the machine kept up with every frame (then every frame was processed).
    if strides.max() == 1:
        assert frames.tolist() == list(range(PACED_FRAMES)), err
    else:
        assert 'stride 1 -> ' in err
        # after each change every k-th frame: the gaps equal the stride (a gap of 2k would be a dropped frame)
        settled = np.flatnonzero((strides[1:] == strides[:-1]) & (strides[1:] > 1)) + 1
        assert (np.diff(frames)[settled - 1] >= strides[settled - 1]).all()
    # Latency: at most (L + 2) x the stride in force frame intervals, L = 8 processed frames, for the p95
    # and with no growth: the second half of the run no worse than the bound either.
    interval_ms, latency = 100.0, np.array([r['latency_ms'] for r in lines])
    window_stride = np.array([strides[i:i + 9].max() for i in range(len(lines))])
    ratio = latency / ((8 + 2) * window_stride * interval_ms)
    assert np.percentile(ratio, 95) < 1.0, (latency, strides)
    assert ratio[len(ratio) // 2:].max() < 1.0, (latency, strides)

    # The offline demo on exactly the processed frames (a folder of them, the boxes renumbered) gives the same.
    folder = tmp_path / 'processed'
    folder.mkdir()
    for number, image in enumerate(f for i, f in enumerate(FrameReader(paced.video)) if i in set(frames)):
        cv2.imwrite(str(folder / f'{number:06d}.png'), image)
    truth = read_bbox_file(paced.boxes, PACED_FRAMES, 160, 120)
    rows = [f'{number},' + ','.join(f'{v:.6f}' for v in truth.detections[frame][0, :4])
            for number, frame in enumerate(frames)]
    (tmp_path / 'processed.csv').write_text('\n'.join(rows) + '\n')
    offline = run_demo(load_config(CONFIG, [*settings, 'DEMO.FPS', '10.0']), folder, tmp_path / 'offline',
                       DemoOptions(bbox_file=str(tmp_path / 'processed.csv'), render=False), walk.ckpt)
    (reference,) = offline.results.values()
    assert reference['frame_ids'].tolist() == list(range(len(frames)))
    for key, atol in (('pred_cam', 1e-5), ('pose', 1e-4), ('betas', 1e-5), ('verts', 1e-5), ('orig_cam', 1e-5),
                      ('joints3d', 1e-5), ('bboxes', 1e-4)):
        online = np.array([r[key] for r in lines], dtype=np.float32)
        np.testing.assert_allclose(online, reference[key], rtol=0, atol=atol, err_msg=key)


def test_stride_control_rises_at_once_and_falls_with_the_load():
    control = StrideControl(fps=10.0, load=0.8)              # 80 ms of processing per frame interval
    assert [control.update(s) for s in (0.5, 0.05)] == [None, None]   # one slow frame (warm-up) changes nothing
    assert [control.update(s) for s in (0.2, 0.23)] == [None, 3]      # two slow ones: median 215 ms -> k 3
    assert [control.update(s) for s in (0.2, 0.23, 0.1, 0.2)] == [None] * 4   # fits 3 x 80 ms: stays
    assert [control.update(s) for s in (0.1, 0.1, 0.09, 0.11)] == [None] * 3 + [2]  # all < 120 ms: k 2
    assert [control.update(s) for s in (0.02, 0.03, 0.02, 0.03)] == [None] * 3 + [1]
    assert control.update(0.05) is None and control.stride == 1

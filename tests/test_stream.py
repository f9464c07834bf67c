"""Online mode: the ring-buffer windows equal the offline windows, a generated video read as a stream gives
the offline demo's results exactly seqlen // 2 frames late, and bad sources fail with one line."""
import json
import shlex
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lib.core.config import load_config
from lib.demo.inference import window_indices
from lib.demo.pipeline import DemoOptions, run_demo
from lib.demo.stream import STREAM_FILE, OnlineGLoT
from lib.models.smpl import build_smpl
from lib.vis.overlay import Figure, OverlayStyle, OverlayWriter
from lib.vis.renderer import track_color
from lib.vis.video import FrameReader
from scripts.make_synthetic_video import make_synthetic_video
from test_demo import CONFIG, SMALL_MODEL, _cli, _video_frames

FRAMES = 20


class _WindowPredictor:
    """Stands in for GLoTPredictor: a crop's 'feature' is its frame number, a 'prediction' is the frame
    numbers of the window (the real predict's first step, :func:`window_indices` over the given rows)."""

    seqlen = 16

    def __init__(self, padding):
        self.padding = padding

    def features(self, frames, tracks, progress=True):
        return {t.track_id: torch.full((1, 2048), float(frames[0])) for t in tracks}

    def predict(self, features, track, width, height, render_plain=False, rows=None):
        idx = window_indices(len(track.frames), self.seqlen, self.padding)[rows]
        return {'window': features[idx][:, :, 0].numpy(), 'frame_ids': track.frames[rows]}


@pytest.mark.parametrize('padding', ['clamp', 'repeat'])
def test_online_windows_equal_offline(padding):
    spans = {1: (0, 30), 2: (5, 12), 3: (20, 40), 4: (36, 40), 5: (3, 4)}  # frames [start, end) per track
    online = OnlineGLoT(_WindowPredictor(padding), 100, 100)
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
    (reference,) = [res.to_dict() for res in offline.results.values()]
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
    for r in lines:   # world keys (lib/demo/world.py): the pelvis turned into the world by the row's own cam_R
        pelvis = np.array(r['joints3d'][8]) + np.array(r['trans_cam'])
        np.testing.assert_allclose(r['trans_world'], np.array(r['cam_R']).T @ pelvis, atol=1e-4)
    assert _video_frames(folder / 'walk_glot_stream.mp4') == (FRAMES, (120, 160))
    assert (folder / 'log.txt').read_text().split('\n')[0].endswith(' command: ' + shlex.join(sys.argv))
    assert load_config(str(folder / 'config.yaml')).DEMO.STREAM_VERTS is True


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


def _decoded(path):
    return np.stack(list(FrameReader(path)))


def test_stream_draws_with_the_configured_camera(walk, tmp_path, capsys):
    """DEMO.CAMERA perspective: the online overlay is drawn with each person's trans_cam and the pinhole (the
    online mode once always drew the weak-perspective camera); re-drawing the JSON lines with the overlay
    writer gives the same video, and the weak-perspective drawing a different one."""
    settings = [*walk.opts, 'DEMO.CAMERA', 'perspective', 'DEMO.FOCAL_LENGTH', '150.0', 'DEMO.STREAM_VERTS', 'True']
    # --render_plain: the crop camera (1, 0, 0), so that the random small GLoT's people are in view
    code, err = _cli(['--stream', str(walk.video), '--bbox_file', str(walk.boxes), '--render_plain', '--cfg', CONFIG,
                      '--checkpoint', str(walk.ckpt), '--output_folder', str(tmp_path / 'online'), *settings], capsys)
    assert code == 0, err
    folder = tmp_path / 'online' / 'walk'
    lines = [json.loads(line) for line in (folder / STREAM_FILE).read_text().splitlines()]
    assert lines[0]['focal_length'] == 150.0
    faces = build_smpl(load_config(CONFIG, walk.opts)).faces
    frames = list(FrameReader(walk.video))
    redrawn = {}
    for camera in ('perspective', 'weak'):
        style = OverlayStyle(camera, focal_length=150.0, plain=True)
        with OverlayWriter(tmp_path / f'{camera}.mp4', faces, 160, 120, 25.0, style) as overlay:
            for line, frame in zip(lines, frames):
                person = {key: np.array(line[key], np.float32) for key in ('verts', 'orig_cam', 'trans_cam')}
                overlay.write(frame, [Figure(person['verts'], person['orig_cam'], person['trans_cam'],
                                             track_color(line['track_id']))])
        redrawn[camera] = _decoded(tmp_path / f'{camera}.mp4')
    online = _decoded(folder / 'walk_glot_stream.mp4')
    assert np.array_equal(online, redrawn['perspective'])
    assert online.max() > 0 and not np.array_equal(online, redrawn['weak'])

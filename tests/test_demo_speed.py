"""Demo speed settings: bfloat16 features (DEMO.FEATURE_DTYPE) stay within a fraction of a percent of float32,
DEMO.DETECT_EVERY runs the detector on every k-th frame with the boxes carried in between, and one decode of
the video serves detection and the colour cue."""
import logging
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lib.core.config import ConfigError, load_config
from lib.demo.inference import GLoTPredictor, PersonTrack, demo_files
from lib.demo.pipeline import DemoOptions, run_demo
from lib.demo.tracking import square_boxes
from lib.demo.detection import read_bbox_file
from lib.vis.video import FrameReader
from scripts.make_synthetic_video import make_synthetic_video
from test_demo import CONFIG, SMALL_MODEL

FRAMES, WIDTH, HEIGHT = 16, 160, 120


@pytest.fixture(scope='module')
def walk(synthetic_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp('speed')
    video = make_synthetic_video(folder / 'walk.mp4', synthetic_root, num_frames=FRAMES, width=WIDTH, height=HEIGHT,
                                 body_height_px=100, bbox_file=folder / 'boxes.csv')
    opts = ['DATA_ROOT', str(synthetic_root), 'DEVICE', 'cpu', 'DEMO.MIN_TRACK_LEN', '10', *SMALL_MODEL]
    from lib.models import build_model, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(folder / 'glot.pth.tar', build_model(load_config(CONFIG, opts)))
    return SimpleNamespace(folder=folder, video=video.path, boxes=folder / 'boxes.csv', ckpt=folder / 'glot.pth.tar',
                           opts=opts)


def test_bfloat16_features_and_vertices_close_to_float32(walk):
    truth = read_bbox_file(walk.boxes, FRAMES, WIDTH, HEIGHT)
    track = PersonTrack(1, np.arange(FRAMES), square_boxes(np.concatenate([d[:, :4] for d in truth.detections])))
    out = {}
    for dtype in ('float32', 'bfloat16'):
        cfg = load_config(CONFIG, [*walk.opts, 'DEMO.FEATURE_DTYPE', dtype])
        predictor = GLoTPredictor(cfg, demo_files(cfg, walk.ckpt))
        features = predictor.features(FrameReader(walk.video), [track], progress=False)[1]
        out[dtype] = features, predictor.predict(features, track, WIDTH, HEIGHT).verts
    (f32, v32), (f16, v16) = out['float32'], out['bfloat16']
    assert f16.dtype == torch.float32 and f16.shape == (FRAMES, 2048)
    error = ((f16 - f32).norm(dim=1) / f32.norm(dim=1)).numpy()
    assert 1e-4 < error.mean() < 0.01    # really computed in bfloat16 (8-bit mantissa), and close
    vertex_mm = np.linalg.norm(v16 - v32, axis=-1) * 1000
    assert 0 < vertex_mm.mean() < 2.0


def test_detect_every_second_frame_one_decode_for_detection_and_colour(walk, tmp_path, monkeypatch, caplog):
    passes = []
    iterate = FrameReader.__iter__

    def counted(self):
        passes.append(1)
        return iterate(self)
    monkeypatch.setattr(FrameReader, '__iter__', counted)
    results, decodes = {}, {}
    for every, colour in ((1, True), (2, True), (2, False)):
        passes.clear()
        cfg = load_config(CONFIG, [*walk.opts, 'DEMO.DETECT_EVERY', str(every), 'DEMO.CACHE', 'False',
                                   'DEMO.DETECTOR', 'hog', 'DEMO.TRACK_APPEARANCE', str(colour)])
        with caplog.at_level(logging.INFO):
            results[every, colour] = run_demo(cfg, walk.video, tmp_path / str(every), DemoOptions(render=False),
                                              walk.ckpt)
        decodes[every, colour] = len(passes)
    # the colour cue costs no decode of its own: it is computed in the detection pass
    assert decodes[1, True] == decodes[2, True] == decodes[2, False]
    results = {every: results[every, True] for every in (1, 2)}
    assert 'the detector runs on 1 frame in 2 (DEMO.DETECT_EVERY 2)' in caplog.text
    (one,), (two,) = results[1].results.values(), results[2].results.values()
    assert len(two.frame_ids) >= 0.95 * len(one.frame_ids)
    # The boxes of the frames the detector skipped were carried by the tracker, and are marked.
    skipped = two.frame_ids % 2 == 1
    assert two.frame_filled[skipped].all() and skipped.sum() >= FRAMES // 2 - 2


@pytest.mark.parametrize('key, value, message', [('DEMO.FEATURE_DTYPE', 'float16', "one of"),
                                                 ('DEMO.DETECT_EVERY', '0', '>= 1'),
                                                 ('DEMO.STREAM_LOAD', '1.5', 'in [0.05, 1.0]')])
def test_speed_settings_are_range_checked(key, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [key, value])
    assert load_config(None, []).DEMO.FEATURE_DTYPE == 'float32' and load_config(None, []).DEMO.DETECT_EVERY == 1

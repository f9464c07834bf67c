"""Python API: the README's snippet runs as written on the quick start's layout; Person matches the pkl."""
import re

import joblib
import numpy as np
import pytest
import torch

from lib.core.config import REPO_ROOT, load_config
from lib.demo.predictor import VideoPredictor
from lib.models import build_model, save_checkpoint
from scripts.make_synthetic_video import make_synthetic_video


def readme_snippet(heading: str) -> str:
    """The first ```python block after ``heading`` in docs/demo.md."""
    text = (REPO_ROOT / 'docs' / 'demo.md').read_text()
    return re.search(r'```python\n(.*?)```', text[text.index(heading):], re.S).group(1)


@pytest.fixture
def quickstart_layout(synthetic_root, tmp_path, monkeypatch):
    """A working directory laid out as after scripts/quickstart.py: configs/, results/quickstart/{data, walk.mp4,
    walk_boxes.csv, runs/synthetic/model_best.pth.tar} (a random model)."""
    (tmp_path / 'configs').symlink_to(REPO_ROOT / 'configs')
    quick = tmp_path / 'results' / 'quickstart'
    quick.mkdir(parents=True)
    (quick / 'data').symlink_to(synthetic_root)
    make_synthetic_video(quick / 'walk.mp4', synthetic_root, num_frames=26, bbox_file=quick / 'walk_boxes.csv')
    cfg = load_config(REPO_ROOT / 'configs' / 'synthetic.yaml', ['DATA_ROOT', str(synthetic_root), 'DEVICE', 'cpu'])
    torch.manual_seed(0)
    save_checkpoint(quick / 'runs' / 'synthetic' / 'model_best.pth.tar', build_model(cfg))
    monkeypatch.chdir(tmp_path)
    return quick


def test_readme_snippet_runs_and_people_match_the_results_file(quickstart_layout, capsys):
    namespace = {}
    exec(readme_snippet('## Python API'), namespace)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('person 1: frames 0-25, pelvis at [') \
        and lines[0].endswith('m, joints2d_img (26, 49, 2)'), lines
    folder = quickstart_layout / 'api' / 'walk'
    assert sorted(p.name for p in folder.iterdir()) == ['bvh', 'cache', 'config.yaml', 'glot_output.pkl', 'log.txt',
                                                             'walk_glot.glb']

    (person,) = namespace['people']
    saved = joblib.load(folder / 'glot_output.pkl')[1]
    np.testing.assert_array_equal(person.theta, np.concatenate([saved['pred_cam'], saved['pose'], saved['betas']], 1))
    for key in ('frame_ids', 'verts', 'joints3d', 'joints2d_img', 'bboxes', 'orig_cam', 'trans_cam', 'principal_point'):
        np.testing.assert_array_equal(getattr(person, key), saved[key])
    np.testing.assert_array_equal(person.pose, saved['pose'])
    np.testing.assert_array_equal(person.betas, saved['betas'])
    assert (person.focal_length, person.fps) == (400.0, 25.0)

    # Without an output folder: the same people, nothing written.
    predictor: VideoPredictor = namespace['predictor']
    again = predictor.run('results/quickstart/walk.mp4', bbox_file='results/quickstart/walk_boxes.csv',
                          output_folder=None)
    np.testing.assert_allclose(again[0].verts, person.verts, atol=1e-5)
    assert sorted(p.name for p in quickstart_layout.iterdir()) == [
        'api', 'data', 'runs', 'walk.mp4', 'walk_boxes.csv']

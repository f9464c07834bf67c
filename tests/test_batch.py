"""Batch mode: which inputs make a batch, a folder with a corrupt video, resuming, a list with a missing file,
and the same files from two torchrun processes."""
import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import joblib
import numpy as np
import pytest
import torch

from lib.core.config import REPO_ROOT, load_config
from lib.core.dist import DistContext
from lib.core.errors import UserError
from lib.demo.batch import DONE_FILE, SUMMARY_FILE, BatchFailed, batch_inputs, run_batch, run_videos
from lib.demo.pipeline import DemoOptions
from scripts.make_synthetic_video import make_synthetic_video
from test_demo import CONFIG, SMALL_MODEL, _cli

LENGTHS = {'a': 12, 'b': 14}


@pytest.fixture(scope='module')
def videos(synthetic_root, tmp_path_factory):
    """A folder with two short generated videos and a corrupt one, a folder with their box files, and a
    small random GLoT."""
    folder = tmp_path_factory.mktemp('batch')
    (folder / 'videos').mkdir()
    for name, frames in LENGTHS.items():
        make_synthetic_video(folder / 'videos' / f'{name}.mp4', synthetic_root, num_frames=frames, width=160,
                             height=120, body_height_px=100, bbox_file=folder / 'boxes' / f'{name}.csv')
    (folder / 'videos' / 'c.mp4').write_bytes(b'\x00\x00\x00\x18ftypmp42' + bytes(200))  # a truncated mp4
    shutil.copy(folder / 'boxes' / 'a.csv', folder / 'boxes' / 'c.csv')
    (folder / 'videos' / 'notes.txt').write_text('not a video')
    opts = ['DATA_ROOT', str(synthetic_root), 'DEVICE', 'cpu', 'DEMO.MIN_TRACK_LEN', '10', *SMALL_MODEL]
    from lib.models import build_model, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(folder / 'glot.pth.tar', build_model(load_config(CONFIG, opts)))
    flags = ['--cfg', CONFIG, '--checkpoint', str(folder / 'glot.pth.tar'), '--bbox_file', str(folder / 'boxes')]
    return SimpleNamespace(folder=folder, videos=folder / 'videos', boxes=folder / 'boxes',
                           ckpt=folder / 'glot.pth.tar', flags=flags, opts=opts)


@pytest.fixture(scope='module')
def first_run(videos):
    """The folder run once in this process (as demo.py --vid_file does): the error raised and the output
    folder."""
    out = videos.folder / 'out'
    with pytest.raises(BatchFailed) as failed:
        run_videos(load_config(CONFIG, videos.opts), videos.videos, out, DemoOptions(bbox_file=str(videos.boxes)),
                   videos.ckpt)
    return failed.value, out


def _summary(out):
    return json.loads((out / SUMMARY_FILE).read_text())


def test_batch_inputs(tmp_path):
    folder = tmp_path / 'many'
    (folder / 'frames').mkdir(parents=True)
    (folder / 'frames' / '000.png').write_bytes(b'')
    (folder / 'empty_sub').mkdir()
    for name in ('b.mp4', 'a.MOV', 'boxes.csv', '._b.mp4', '.b.mp4.123.partial.mp4'):
        (folder / name).write_bytes(b'')
    assert batch_inputs(folder) == [folder / 'a.MOV', folder / 'b.mp4', folder / 'frames']
    assert batch_inputs(folder / 'frames') is None          # a folder of images is one video
    assert batch_inputs(folder / 'b.mp4') is None
    (tmp_path / 'list.txt').write_text(f'# clips\nb.mp4\n\n  {folder / "a.MOV"}  \nnope.avi\n')
    (tmp_path / 'b.mp4').write_bytes(b'')
    assert batch_inputs(tmp_path / 'list.txt') == [tmp_path / 'b.mp4', folder / 'a.MOV', tmp_path / 'nope.avi']
    (tmp_path / 'nothing').mkdir()
    (tmp_path / 'nothing' / 'readme.md').write_text('x')
    with pytest.raises(UserError, match='holds no videos'):
        batch_inputs(tmp_path / 'nothing')
    (tmp_path / 'blank.txt').write_text('# only a comment\n\n')
    with pytest.raises(UserError, match='names no videos'):
        batch_inputs(tmp_path / 'blank.txt')
    with pytest.raises(UserError, match='would both write to'):
        run_batch(load_config(None, ['DEVICE', 'cpu']), [folder / 'b.mp4', tmp_path / 'b.mp4'], tmp_path / 'out')

    assert [DistContext(r, 3).share(list('abcdefg')) for r in range(3)] == [[0, 3, 6], [1, 4], [2, 5]]
    assert DistContext(1, 2, 1).device('cpu') == torch.device('cpu')


def test_batch_folder_with_a_corrupt_video(videos, first_run):
    failed, out = first_run
    assert failed.exit_code == 2
    assert str(failed) == f'1 of 3 videos failed ({videos.videos / "c.mp4"}); see {out / SUMMARY_FILE}'
    summary = _summary(out)
    rows = {os.path.basename(row['video']): row for row in summary['videos']}
    assert list(rows) == ['a.mp4', 'b.mp4', 'c.mp4']
    assert [(r['status'], r['people'], r['frames']) for r in rows.values()] == [('done', 1, 12), ('done', 1, 14),
                                                                               ('failed', 0, 0)]
    assert rows['c.mp4']['error'].startswith(f'cannot open {videos.videos / "c.mp4"} as a video')
    assert summary['counts'] == {'done': 2, 'skipped': 0, 'failed': 1, 'missing': 0}
    for name, frames in LENGTHS.items():
        (res,) = joblib.load(out / name / 'glot_output.pkl').values()
        assert res['frame_ids'].tolist() == list(range(frames)) and res['verts'].shape == (frames, 6890, 3)
        done = json.loads((out / name / DONE_FILE).read_text())
        assert sorted(done['files']) == [f'{name}_glot_output.mp4', 'config.yaml', 'glot_output.pkl', 'log.txt']
        assert done['key']['video']['size'] == (videos.videos / f'{name}.mp4').stat().st_size
        assert 'DEVICE' not in done['key']['config']
    assert not (out / 'c').exists()


def test_batch_rerun_skips_finished_videos(videos, first_run, tmp_path, monkeypatch, capsys, caplog):
    _, out = first_run
    argv = ['--vid_file', str(videos.videos), '--output_folder', str(out), *videos.flags, *videos.opts]
    stamps = {name: (out / name / 'glot_output.pkl').stat().st_mtime_ns for name in LENGTHS}
    monkeypatch.setattr('lib.demo.batch.GLoTPredictor', lambda *a, **k: pytest.fail('models loaded'))
    caplog.set_level('INFO')
    code, err = _cli(argv, capsys)
    assert code == 2 and err.strip().splitlines()[-1].startswith('error: 1 of 3 videos failed'), err
    assert [r['status'] for r in _summary(out)['videos']] == ['skipped', 'skipped', 'failed']
    assert f'skipping {videos.videos / "a.mp4"}: outputs complete ({out / "a" / DONE_FILE})' in caplog.text
    assert stamps == {name: (out / name / 'glot_output.pkl').stat().st_mtime_ns for name in LENGTHS}
    monkeypatch.undo()

    # An output gone: that video reruns (its cached features are reused), the other is still skipped.
    (out / 'b' / 'glot_output.pkl').unlink()
    code, _ = _cli(argv, capsys)
    assert code == 2
    assert [r['status'] for r in _summary(out)['videos']] == ['skipped', 'done', 'failed']
    assert (out / 'b' / 'glot_output.pkl').is_file()

    # A list naming a missing file: reported, the rest processed (here: skipped, already complete).
    listing = tmp_path / 'clips.txt'
    listing.write_text(f'{videos.videos / "a.mp4"}\nmissing.mp4\n')
    code, err = _cli(['--vid_file', str(listing), '--output_folder', str(out), *videos.flags, *videos.opts],
                     capsys)
    assert code == 2 and err.strip().splitlines()[-1].startswith('error: 1 of 2 videos failed')
    rows = _summary(out)['videos']
    assert [(r['status'], r['error']) for r in rows] == [('skipped', ''),
                                                         ('missing', f'not found: {tmp_path / "missing.mp4"}')]


def test_batch_bad_inputs_exit_2(videos, tmp_path, capsys):
    (tmp_path / 'empty').mkdir()
    for argv, message in ((['--vid_file', str(tmp_path / 'empty')], 'holds no videos'),
                          (['--vid_file', str(videos.videos), '--bbox_file', str(videos.folder / 'boxes' / 'a.csv')],
                           'must be a folder')):
        code, err = _cli(argv + ['--output_folder', str(tmp_path / 'out'), '--cfg', CONFIG,
                                 '--checkpoint', str(videos.ckpt), *videos.opts], capsys)
        last = err.strip().splitlines()[-1]
        assert code == 2 and last.startswith('error: ') and message in last and 'Traceback' not in err, err
    assert not (tmp_path / 'out').exists()


def test_torchrun_two_processes_write_the_same_files(videos, first_run, monkeypatch):
    _, single = first_run
    out = videos.folder / 'out_torchrun'
    env = {**os.environ, 'PYTHONPATH': str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                           'demo.py', '--vid_file', str(videos.videos), '--output_folder', str(out),
                           *videos.flags, *videos.opts], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0, proc.stderr[-3000:]
    assert 'error: 1 of 3 videos failed' in proc.stderr, proc.stderr[-3000:]
    summary = _summary(out)
    assert summary['world_size'] == 2
    assert [(r['status'], r['rank'], r['frames']) for r in summary['videos']] == [('done', 0, 12), ('done', 1, 14),
                                                                                 ('failed', 0, 0)]
    for name in LENGTHS:
        files = sorted(p.name for p in (out / name).iterdir())
        assert files == sorted(p.name for p in (single / name).iterdir()) == [
            f'{name}_glot_output.mp4', 'cache', 'config.yaml', DONE_FILE, 'glot_output.pkl', 'log.txt']
        ours, theirs = joblib.load(out / name / 'glot_output.pkl'), joblib.load(single / name / 'glot_output.pkl')
        assert ours.keys() == theirs.keys()
        for pid in ours:
            assert ours[pid].keys() == theirs[pid].keys()
            for key, value in ours[pid].items():
                if value is None:
                    assert theirs[pid][key] is None
                else:
                    np.testing.assert_allclose(value, theirs[pid][key], rtol=1e-4, atol=1e-4, err_msg=key)

    # The markers do not depend on the number of processes: one process now skips both videos.
    monkeypatch.setattr('lib.demo.batch.GLoTPredictor', lambda *a, **k: pytest.fail('models loaded'))
    with pytest.raises(BatchFailed):
        run_batch(load_config(CONFIG, videos.opts), batch_inputs(videos.videos), out,
                  DemoOptions(bbox_file=str(videos.boxes)), videos.ckpt)
    assert [r['status'] for r in _summary(out)['videos']] == ['skipped', 'skipped', 'failed']

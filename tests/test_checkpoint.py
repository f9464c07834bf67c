"""Official-compatible checkpoints: layout, round trip, prefixes, SMPL entries, clear errors, atomic save."""
from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from lib.models import CheckpointError, build_model, load_checkpoint, save_checkpoint
from lib.models.checkpoint import official_state_dict

FIXTURE = Path(__file__).parent / 'fixtures' / 'official_state_dict_keys.txt'
CFG = 'configs/repr_table1_3dpw.yaml'


def fixture_shapes() -> dict[str, tuple[int, ...]]:
    rows = (line.split() for line in FIXTURE.read_text().splitlines())
    return {name: tuple(int(s) for s in shape.split(',')) for name, shape in rows}


@pytest.fixture(scope='module')
def models(make_cfg):
    """Two models with different random weights."""
    torch.manual_seed(0)
    a = build_model(make_cfg(CFG)).eval()
    torch.manual_seed(1)
    b = build_model(make_cfg(CFG)).eval()
    return a, b


@pytest.fixture(scope='module')
def saved(models, tmp_path_factory):
    path = tmp_path_factory.mktemp('ckpt') / 'model_best.pth.tar'
    save_checkpoint(path, models[0], epoch=7, performance=np.float64(52.5))
    return path


def official_like(models) -> OrderedDict:
    """The state dict an official checkpoint of models[0] holds."""
    return official_state_dict(models[0])


def test_saved_file_has_the_official_layout(saved):
    ckpt = torch.load(saved, weights_only=False)
    assert list(ckpt) == ['epoch', 'gen_state_dict', 'performance', 'gen_optimizer']
    assert ckpt['epoch'] == 7 and ckpt['performance'] == 52.5 and ckpt['gen_optimizer'] is None
    state = ckpt['gen_state_dict']
    assert {k: tuple(v.shape) for k, v in state.items()} == fixture_shapes()
    for prefix in ('regressor.smpl.', 'global_modeling.regressor.smpl.'):
        assert not state[prefix + 'betas'].any() and state[prefix + 'body_pose'].shape == (64, 69)
    assert state['regressor.smpl.faces_tensor'].dtype == torch.int64
    assert not any(p.name.endswith('.tmp') for p in saved.parent.iterdir())


def test_round_trip_gives_identical_outputs(models, saved):
    a, b = models
    x = torch.randn(2, 16, 2048, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = b(x)[0][0]['verts'].clone()
    ckpt = load_checkpoint(b, saved)
    assert ckpt['epoch'] == 7
    with torch.no_grad():
        out_a, out_b = a(x), b(x)
    assert not torch.equal(before, out_b[0][0]['verts'])
    for key in out_a[0][0]:
        assert torch.equal(out_a[0][0][key], out_b[0][0][key])
        assert torch.equal(out_a[2][0][key], out_b[2][0][key])


def test_module_prefix_and_bare_state_dict_load(models, tmp_path):
    state = official_like(models)
    path = tmp_path / 'ddp.pth.tar'
    torch.save({'gen_state_dict': OrderedDict(('module.' + k, v) for k, v in state.items())}, path)
    load_checkpoint(models[1], path)
    bare = tmp_path / 'bare.pt'
    torch.save(state, bare)
    load_checkpoint(models[1], bare)
    assert torch.equal(models[1].proj_short.weight, models[0].proj_short.weight)


@pytest.mark.parametrize('edit, message', [
    (lambda s: s.pop('global_modeling.out_proj.bias'), r'1 missing key\(s\) \(global_modeling\.out_proj\.bias\)'),
    (lambda s: s.__setitem__('head.fc.weight', torch.zeros(3)), r'1 unexpected key\(s\) \(head\.fc\.weight\)'),
    (lambda s: s.__setitem__('proj_mem.weight', torch.zeros(256, 1024)),
     r'shape mismatch\(es\) \(proj_mem\.weight \(256, 1024\) vs model \(256, 512\)\)'),
])
def test_mismatching_state_dict_is_one_clear_line(models, tmp_path, edit, message):
    state = official_like(models)
    edit(state)
    path = tmp_path / 'bad.pth.tar'
    torch.save({'gen_state_dict': state}, path)
    with pytest.raises(CheckpointError, match=message) as err:
        load_checkpoint(models[1], path)
    assert '\n' not in str(err.value) and 'bad.pth.tar does not fit this GLoT model' in str(err.value)


def test_other_architecture_lists_the_problem(make_cfg, models, saved):
    small = build_model(make_cfg(CFG, 'MODEL.n_layers', 1))
    with pytest.raises(CheckpointError, match=r'unexpected key\(s\) \(global_modeling\.trans\.blocks\.1\.'):
        load_checkpoint(small, saved)


def test_300_beta_smpl_buffers_are_refused(models, tmp_path):
    state = official_like(models)
    state['regressor.smpl.shapedirs'] = torch.zeros(6890, 3, 300)
    path = tmp_path / 'smpl300.pth.tar'
    torch.save({'gen_state_dict': state}, path)
    with pytest.raises(CheckpointError, match=r'regressor\.smpl\.shapedirs has 300 shape coefficients'):
        load_checkpoint(models[1], path)


def test_smpl_buffers_are_checked_not_loaded(models, tmp_path, caplog):
    state = official_like(models)
    state['regressor.smpl.v_template'] = state['regressor.smpl.v_template'] + 0.01
    path = tmp_path / 'other_smpl.pth.tar'
    torch.save({'gen_state_dict': state}, path)
    with caplog.at_level(logging.WARNING, logger='lib.models.checkpoint'):
        load_checkpoint(models[1], path)
    assert 'regressor.smpl.v_template: max abs diff 0.01' in caplog.text
    assert torch.equal(models[1].smpl.v_template, models[0].smpl.v_template)


def test_truncated_and_missing_files(saved, models, tmp_path):
    cut = tmp_path / 'cut.pth.tar'
    cut.write_bytes(saved.read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match=r'cannot read checkpoint .*cut\.pth\.tar: truncated or not a PyTorch file'):
        load_checkpoint(models[1], cut)
    with pytest.raises(CheckpointError, match=r'checkpoint not found: .*absent\.pth\.tar'):
        load_checkpoint(models[1], tmp_path / 'absent.pth.tar')
    other = tmp_path / 'other.pth.tar'
    torch.save({'model': {}, 'epoch': 3}, other)
    with pytest.raises(CheckpointError, match=r"no 'gen_state_dict' \(keys: model, epoch\)"):
        load_checkpoint(models[1], other)


def test_model_without_unused_weights_loads_and_saves_official_files(make_cfg, saved, tmp_path):
    lean = build_model(make_cfg(CFG, 'MODEL.KEEP_UNUSED_WEIGHTS', False))
    assert 'global_modeling.regressor.fc2.weight' not in lean.state_dict()
    assert sum(p.numel() for p in lean.parameters()) == 16_743_948 - 1_049_600 - 13_325
    load_checkpoint(lean, saved)
    out = tmp_path / 'lean.pth.tar'
    save_checkpoint(out, lean)
    state = torch.load(out, weights_only=False)['gen_state_dict']
    assert {k: tuple(v.shape) for k, v in state.items()} == fixture_shapes()
    assert not state['global_modeling.regressor.fc2.weight'].any()


def test_failed_save_keeps_the_old_file(models, tmp_path, monkeypatch):
    path = tmp_path / 'checkpoint.pth.tar'
    save_checkpoint(path, models[0], epoch=1)
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', broken_save)
    with pytest.raises(OSError, match='disk full'):
        save_checkpoint(path, models[0], epoch=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ['checkpoint.pth.tar']


def test_optimizer_and_extra_entries_are_saved(models, tmp_path):
    opt = torch.optim.Adam(models[0].parameters(), lr=1e-4)
    path = save_checkpoint(tmp_path / 'resume.pth.tar', models[0], epoch=3, gen_optimizer=opt,
                           scheduler={'last_epoch': 3})
    ckpt = torch.load(path, weights_only=False)
    assert ckpt['gen_optimizer']['param_groups'][0]['lr'] == 1e-4
    assert ckpt['scheduler'] == {'last_epoch': 3}

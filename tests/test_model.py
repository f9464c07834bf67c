"""GLoT network: official names/shapes, parameter count, forward contract, masking, KTD, blocks."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lib.models import GLoT, build_model
from lib.models.global_branch import MaskedTransformer
from lib.models.hscr import KTD, KTD_ANCESTORS
from lib.models.smpl import build_smpl, load_h36m_regressor, load_mean_params
from lib.models.transformer import Attention, Block, CrossAttention, DropPath
from lib.core.errors import UserError

FIXTURE = Path(__file__).parent / 'fixtures' / 'official_state_dict_keys.txt'
CONFIGS = ('configs/repr_table1_3dpw.yaml', 'configs/repr_table1_h36m_mpii3d.yaml', 'configs/repr_table2_3dpw.yaml')
SMPL_PREFIXES = ('regressor.smpl.', 'global_modeling.regressor.smpl.')
OFFICIAL_PARAM_COUNT = 16_743_948


def official_entries(with_smpl: bool = False) -> list[tuple[str, tuple[int, ...]]]:
    entries = []
    for line in FIXTURE.read_text().splitlines():
        name, shape = line.split()
        if with_smpl or not name.startswith(SMPL_PREFIXES):
            entries.append((name, tuple(int(s) for s in shape.split(','))))
    return entries


@pytest.fixture(scope='module')
def cfg(make_cfg):
    return make_cfg(CONFIGS[0])


@pytest.fixture(scope='module')
def model(cfg):
    torch.manual_seed(0)
    return build_model(cfg).eval()


@pytest.fixture(scope='module')
def features():
    return torch.randn(2, 16, 2048, generator=torch.Generator().manual_seed(1))


def test_fixture_has_the_198_official_entries():
    entries = official_entries(with_smpl=True)
    assert len(entries) == 198 and len({n for n, _ in entries}) == 198
    assert len(official_entries()) == 198 - 2 * 12


@pytest.mark.parametrize('cfg_file', CONFIGS)
def test_state_dict_names_and_shapes_match_official(make_cfg, cfg_file):
    model = build_model(make_cfg(cfg_file))
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items() if not k.startswith(SMPL_PREFIXES)]
    assert ours == official_entries()
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAM_COUNT


def test_smpl_is_shared_and_holds_the_official_buffers(model):
    assert model.regressor.smpl is model.global_modeling.regressor.smpl
    official_smpl = {n: s for n, s in official_entries(with_smpl=True) if n.startswith('regressor.smpl.')}
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith('regressor.smpl.')}
    dummies = {'regressor.smpl.' + n for n in ('betas', 'global_orient', 'body_pose')}
    assert ours == {n: s for n, s in official_smpl.items() if n not in dummies}


def test_mean_params_are_buffers_and_mask_token_input_is_not_persistent(model, cfg):
    mean = load_mean_params(cfg)
    reg = model.global_modeling.regressor
    assert torch.equal(reg.init_pose[0], mean['pose']) and torch.equal(reg.init_cam[0], mean['cam'])
    trans = model.global_modeling.trans
    assert torch.equal(trans.mask_token_input, torch.cat([mean['pose'], mean['shape'], mean['cam']]))
    assert 'global_modeling.trans.mask_token_input' not in model.state_dict()


def test_eval_outputs_have_official_shapes(model, features, cfg):
    J = load_h36m_regressor(cfg)
    with torch.no_grad():
        local, mask_ids, glob = model(features)
        local_j, _, glob_j = model(features, J_regressor=J)
    assert mask_ids is None
    expect = {'theta': (2, 85), 'verts': (2, 6890, 3), 'kp_2d': (2, 49, 2), 'kp_3d': (2, 49, 3),
              'rotmat': (2, 24, 3, 3)}
    assert {k: tuple(v.shape) for k, v in local[0].items()} == expect
    assert {k: tuple(v.shape) for k, v in glob[0].items()} == {k: (2, 1) + s[1:] for k, s in expect.items()}
    assert local_j[0]['kp_3d'].shape == (2, 14, 3) and local_j[0]['kp_2d'].shape == (2, 14, 2)
    assert glob_j[0]['kp_3d'].shape == (2, 1, 14, 3)
    # The 14 LSP joints are J_regressor (H36M order) applied to the vertices, reordered by H36M_TO_J14.
    h36m = torch.einsum('jv,bvc->bjc', J, local_j[0]['verts'])
    torch.testing.assert_close(local_j[0]['kp_3d'], h36m[:, [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]])
    torch.testing.assert_close(local_j[0]['verts'], local[0]['verts'])


def test_decode_global_false_returns_the_same_local_output(model, features):
    with torch.no_grad():
        full, _, _ = model(features)
        local_only, mask_ids, glob = model(features, decode_global=False)
    assert glob is None and mask_ids is None
    for key in full[0]:
        torch.testing.assert_close(local_only[0][key], full[0][key], rtol=0, atol=1e-6)


def test_train_outputs_have_official_shapes_and_masks(model, features):
    model.train()
    try:
        torch.manual_seed(3)
        local, mask_ids, glob = model(features, is_train=True)
    finally:
        model.eval()
    assert {k: tuple(v.shape) for k, v in local[0].items()} == {
        'theta': (2, 3, 85), 'verts': (2, 3, 6890, 3), 'kp_2d': (2, 3, 49, 2), 'kp_3d': (2, 3, 49, 3),
        'rotmat': (2, 3, 24, 3, 3)}
    assert glob[0]['verts'].shape == (2, 16, 6890, 3) and glob[0]['theta'].shape == (2, 16, 85)
    assert mask_ids.shape == (2, 16, 1) and mask_ids.dtype == torch.bool
    assert mask_ids.sum(dim=1).flatten().tolist() == [8, 8]
    local[0]['verts'].sum().backward()
    assert model.proj_short.weight.grad is not None and model.global_modeling.proj.weight.grad is not None
    # HSCR's initial estimate is detached: no gradient reaches the global regressor through it.
    grad = model.global_modeling.regressor.decpose.weight.grad
    assert grad is None or not grad.any()
    model.zero_grad(set_to_none=True)


def test_eval_predicts_the_middle_frame(cfg, features):
    """With masking off and dropout off, training mode's frame 8 equals the eval output (also checks that the
    eval-only shortcuts return the rows of the full computation)."""
    torch.manual_seed(0)
    smpl, mean = build_smpl(cfg), load_mean_params(cfg)
    model = GLoT(smpl, mean, mask_ratio=0.0).eval()
    with torch.no_grad():
        train_local, mask_ids, train_glob = model(features, is_train=True)
        local, _, glob = model(features)
    assert not mask_ids.any()
    for key in local[0]:
        torch.testing.assert_close(local[0][key], train_local[0][key][:, 1], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(glob[0][key][:, 0], train_glob[0][key][:, 8], rtol=1e-4, atol=1e-5)


def test_wrong_feature_shape_is_refused(model):
    with pytest.raises(ValueError, match=r'\(B, 16, 2048\)'):
        model(torch.zeros(2, 12, 2048))


@pytest.mark.parametrize('length, ratio, kept', [(16, 0.5, 8), (16, 0.3, 11), (10, 0.25, 7), (16, 0.0, 16)])
def test_random_masking_keeps_int_t_times_one_minus_ratio(length, ratio, kept):
    x = torch.arange(3 * length, dtype=torch.float32).view(3, length, 1).expand(-1, -1, 4)
    torch.manual_seed(0)
    x_kept, mask, ids_restore = MaskedTransformer.random_masking(x, ratio)
    assert x_kept.shape == (3, kept, 4) and mask.shape == (3, length, 1)
    assert (~mask).sum(dim=1).flatten().tolist() == [kept] * 3
    for b in range(3):
        frames = (x_kept[b, :, 0] - b * length).long()
        assert sorted(frames.tolist()) == torch.nonzero(~mask[b, :, 0]).flatten().tolist()
    assert torch.equal(torch.sort(ids_restore, dim=1).values, torch.arange(length).expand(3, -1))


def test_mask_token_fills_the_masked_frames(cfg):
    trans = MaskedTransformer(load_mean_params(cfg), length=16, depth=2, embed_dim=8, mlp_hidden_dim=16,
                              num_heads=2)
    x = torch.randn(2, 16, 4)
    torch.manual_seed(0)
    kept, mask, ids_restore = trans.random_masking(x, 0.5)
    filled = trans.fill_masked(kept, ids_restore)
    token = trans.mask_token_mlp(trans.mask_token_input)
    m = mask[..., 0]
    assert torch.equal(filled[~m], x[~m])
    assert torch.equal(filled[m], token.expand(int(m.sum()), -1))


def test_ktd_ancestors_and_head_input_sizes():
    official = [[], [0], [0], [0], [0, 1], [0, 2], [0, 3], [0, 1, 4], [0, 2, 5], [0, 3, 6], [0, 1, 4, 7],
                [0, 2, 5, 8], [0, 3, 6, 9], [0, 3, 6, 9], [0, 3, 6, 9], [0, 3, 6, 9, 12], [0, 3, 6, 9, 13],
                [0, 3, 6, 9, 14], [0, 3, 6, 9, 13, 16], [0, 3, 6, 9, 14, 17], [0, 3, 6, 9, 13, 16, 18],
                [0, 3, 6, 9, 14, 17, 19], [0, 3, 6, 9, 13, 16, 18, 20], [0, 3, 6, 9, 14, 17, 19, 21]]
    assert [list(a) for a in KTD_ANCESTORS] == official
    sizes = [head.in_features for head in KTD().joint_regs]
    assert sizes == [1030, 1036, 1036, 1036, 1042, 1042, 1042, 1048, 1048, 1048, 1054, 1054, 1054, 1054, 1054,
                     1060, 1060, 1060, 1066, 1066, 1072, 1072, 1078, 1078]


@pytest.mark.parametrize('official, offsets', [(True, lambda j: j), (False, lambda j: 6 * j)])
def test_ktd_global_pose_slice(official, offsets):
    """Each head copies its pose0 slice: official [j, j+6), paper [6j, 6j+6)."""
    ktd = KTD(hidden_dim=4, official_pose_slice=official)
    with torch.no_grad():
        for head in ktd.joint_regs:
            head.weight.zero_()
            head.bias.zero_()
            head.weight[:, -6:] = torch.eye(6)
    pose0 = torch.arange(144, dtype=torch.float32).view(1, 144)
    delta = ktd(torch.zeros(1, 4), pose0).view(24, 6)
    for j in range(24):
        assert delta[j].tolist() == list(range(offsets(j), offsets(j) + 6))


def test_ktd_feeds_ancestor_deltas_root_first():
    ktd = KTD(hidden_dim=1)
    with torch.no_grad():
        for head in ktd.joint_regs:
            head.weight.zero_()
            head.bias.fill_(1.0)
            head.weight[:, 1:-6] = torch.eye(6).repeat(1, (head.in_features - 7) // 6)
    delta = ktd(torch.zeros(1, 1), torch.zeros(1, 144)).view(24, 6)[:, 0]
    # delta_j = 1 + sum of the ancestors' deltas: 2 ** depth.
    depth = [len(a) for a in KTD_ANCESTORS]
    assert delta.tolist() == [2.0 ** d for d in depth]


def _reference_attention(q, k, v, heads):
    b, nq, c = q.shape
    split = lambda t: t.view(b, t.shape[1], heads, c // heads).transpose(1, 2)   # noqa: E731
    attn = (split(q) @ split(k).transpose(-2, -1)) * (c // heads) ** -0.5
    return (attn.softmax(-1) @ split(v)).transpose(1, 2).reshape(b, nq, c)


def test_attention_matches_softmax_reference_and_query_subset():
    torch.manual_seed(0)
    attn = Attention(16, num_heads=4, qkv_bias=True).eval()
    x = torch.randn(2, 5, 16)
    q, k, v = attn.qkv(x).split(16, dim=-1)
    expected = attn.proj(_reference_attention(q, k, v, 4))
    torch.testing.assert_close(attn(x), expected)
    torch.testing.assert_close(attn(x, slice(1, 3)), expected[:, 1:3])
    block = Block(16, 4, 32, qkv_bias=True).eval()
    torch.testing.assert_close(block(x, slice(2, 3)), block(x)[:, 2:3])


def test_cross_attention_uses_k_then_v_rows():
    torch.manual_seed(0)
    cross = CrossAttention(16, num_heads=4)
    x, mem = torch.randn(2, 3, 16), torch.randn(2, 7, 16)
    k, v = mem @ cross.kv_l.weight[:16].T, mem @ cross.kv_l.weight[16:].T
    expected = cross.proj(_reference_attention(cross.q_l(x), k, v, 4))
    torch.testing.assert_close(cross(x, mem), expected)


def test_drop_path_drops_whole_samples():
    dp = DropPath(0.5)
    x = torch.ones(64, 3, 2)
    assert torch.equal(dp.eval()(x), x)
    torch.manual_seed(0)
    y = dp.train()(x)
    per_sample = y.view(64, -1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all()


def test_initialisation_schemes(model):
    trans = model.global_modeling.trans
    for pos in (trans.pos_embed, trans.decoder_pos_embed, model.local_trans_en.pos_embed):
        assert 0.015 < pos.std().item() < 0.025
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            assert torch.equal(module.weight, torch.ones_like(module.weight))
    # xavier-uniform with gain 1 overwrites the gain-0.01 KTD init: bound sqrt(6 / (fan_in + fan_out)).
    head = model.regressor.local_reg.joint_regs[0]
    bound = (6 / (1030 + 6)) ** 0.5
    assert 0.9 * bound < head.weight.abs().max().item() <= bound
    assert not head.bias.any() and not model.proj_short.bias.any()


def test_pretrained_regressor_comes_from_spin(make_cfg, synthetic_root):
    spin = torch.load(synthetic_root / 'base_data' / 'spin_model_checkpoint.pth.tar', weights_only=False)['model']
    model = build_model(make_cfg(CONFIGS[0]), pretrained_regressor=True)
    reg = model.global_modeling.regressor
    for key in ('fc1.weight', 'fc2.weight', 'decpose.bias', 'init_pose'):
        assert torch.equal(reg.state_dict()[key], spin[key])
    with pytest.raises(UserError, match=r'SPIN checkpoint not found: .*nope\.pth\.tar.*SPIN'):
        build_model(make_cfg(CONFIGS[0], 'TRAIN.PRETRAINED_REGRESSOR', 'nope.pth.tar'), pretrained_regressor=True)


def test_device_placement(model):
    assert {p.device.type for p in model.parameters()} == {'cpu'}
    assert {b.device.type for b in model.buffers()} == {'cpu'}


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu(make_cfg, features):
    torch.manual_seed(0)
    cpu_model = build_model(make_cfg(CONFIGS[0])).eval()
    torch.manual_seed(0)
    gpu_model = build_model(make_cfg(CONFIGS[0], 'DEVICE', 'cuda')).eval()
    with torch.no_grad():
        a = cpu_model(features)[0][0]['verts']
        b = gpu_model(features.cuda())[0][0]['verts'].cpu()
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


def test_spin_hmr_loads_the_spin_checkpoint(synthetic_root):
    from lib.models.spin import load_hmr

    path = synthetic_root / 'base_data' / 'spin_model_checkpoint.pth.tar'
    spin = torch.load(path, weights_only=False)['model']
    hmr = load_hmr(path)
    assert set(hmr.state_dict()) == set(spin)
    assert torch.equal(hmr.layer4[2].conv3.weight, spin['layer4.2.conv3.weight'])
    with torch.no_grad():
        images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        features = hmr.feature_extractor(images)
        out = hmr(images)
    assert features.shape == (2, 2048)
    torch.testing.assert_close(out['features'], features)
    assert out['pose'].shape == (2, 144) and out['shape'].shape == (2, 10) and out['cam'].shape == (2, 3)

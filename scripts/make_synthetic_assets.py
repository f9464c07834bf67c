"""Generate stand-ins for the licensed base_data files, in their exact real formats.

    python scripts/make_synthetic_assets.py                     # writes data/synthetic/base_data/...
    python scripts/make_synthetic_assets.py --out /tmp/glot --variants

Writes into ``<out>/base_data/``:
- ``SMPL_NEUTRAL.pkl``, ``SMPL_MALE.pkl``, ``SMPL_FEMALE.pkl``: SMPL v1.0.0 pickle layout (``v_template``,
  ``f``, ``J_regressor`` as scipy sparse, ``kintree_table``, ``weights``, ``posedirs``, ``shapedirs``, ``J``,
  ``bs_style``, ``bs_type``) with 6890 vertices and 13776 faces. The body is a closed star-shaped surface
  around a human rest skeleton (``REST_JOINTS``, metres, y up, the body's left on +x), skinned to the real
  24-joint SMPL tree; the smplx vertex joints (nose, eyes, ears, toes, heels, fingertips) sit at matching
  places. ``J_regressor @ v_template`` reproduces ``REST_JOINTS`` exactly.
- ``smpl_mean_params.npz`` (pose 144 in 6D, shape 10, cam 3), ``J_regressor_extra.npy`` (9 x 6890),
  ``J_regressor_h36m.npy`` (17 x 6890), regressing the designed points in ``EXTRA_POINTS`` / ``H36M_POINTS``.
- ``spin_model_checkpoint.pth.tar``: SPIN's checkpoint keys (``model`` with the ResNet-50 trunk and the
  regressor, ``optimizer``, ``epoch``, ...) with random weights.

``--variants`` also writes ``<out>/smpl_variants/v1.1.0/SMPL_NEUTRAL.pkl`` (300 betas) and
``<out>/smpl_variants/chumpy/SMPL_NEUTRAL.pkl`` (arrays pickled as chumpy ``Ch`` objects, made without
chumpy). Everything is deterministic in ``seed``.
"""
from __future__ import annotations

import argparse
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.core.errors import UserError  # noqa: E402
from lib.core.io import atomic_path, atomic_write  # noqa: E402

NUM_VERTS = 6890
RINGS, SEGMENTS = 84, 82  # UV sphere: RINGS * SEGMENTS + 2 poles = 6890 vertices, 2 * RINGS * SEGMENTS faces

# Rest skeleton (SMPL joint order), metres.
REST_JOINTS = np.array([
    [0.00, 0.00, 0.00],     # 0 pelvis
    [0.07, -0.09, 0.00],    # 1 left hip
    [-0.07, -0.09, 0.00],   # 2 right hip
    [0.00, 0.11, -0.02],    # 3 spine1
    [0.10, -0.48, 0.01],    # 4 left knee
    [-0.10, -0.48, 0.01],   # 5 right knee
    [0.00, 0.24, 0.00],     # 6 spine2
    [0.09, -0.88, -0.03],   # 7 left ankle
    [-0.09, -0.88, -0.03],  # 8 right ankle
    [0.00, 0.30, 0.02],     # 9 spine3
    [0.11, -0.94, 0.09],    # 10 left foot
    [-0.11, -0.94, 0.09],   # 11 right foot
    [0.00, 0.52, -0.01],    # 12 neck
    [0.08, 0.43, -0.01],    # 13 left collar
    [-0.08, 0.43, -0.01],   # 14 right collar
    [0.00, 0.62, 0.04],     # 15 head
    [0.19, 0.45, -0.02],    # 16 left shoulder
    [-0.19, 0.45, -0.02],   # 17 right shoulder
    [0.45, 0.44, -0.04],    # 18 left elbow
    [-0.45, 0.44, -0.04],   # 19 right elbow
    [0.70, 0.45, -0.04],    # 20 left wrist
    [-0.70, 0.45, -0.04],   # 21 right wrist
    [0.78, 0.45, -0.05],    # 22 left hand
    [-0.78, 0.45, -0.05],   # 23 right hand
])
PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21])

# (start joint, end point, radius) of the capsules whose union outlines the body.
_HEAD_TOP = np.array([0.00, 0.76, 0.03])
_CAPSULES = [
    (0, REST_JOINTS[6], 0.15), (6, REST_JOINTS[12], 0.16), (12, REST_JOINTS[15], 0.06),
    (15, _HEAD_TOP, 0.10), (1, REST_JOINTS[4], 0.075), (2, REST_JOINTS[5], 0.075),
    (4, REST_JOINTS[7], 0.055), (5, REST_JOINTS[8], 0.055), (7, REST_JOINTS[10] + [0, 0, 0.05], 0.045),
    (8, REST_JOINTS[11] + [0, 0, 0.05], 0.045), (13, REST_JOINTS[16], 0.06), (14, REST_JOINTS[17], 0.06),
    (16, REST_JOINTS[18], 0.05), (17, REST_JOINTS[19], 0.05), (18, REST_JOINTS[20], 0.04),
    (19, REST_JOINTS[21], 0.04), (20, REST_JOINTS[22] + [0.06, 0, 0], 0.035),
    (21, REST_JOINTS[23] + [-0.06, 0, 0], 0.035),
]
_STAR_CENTRE = np.array([0.0, 0.10, 0.0])

# smplx vertex ids (SMPL topology) of the vertex joints, and where they go on this body.
VERTEX_JOINT_TARGETS = {
    332: [0.00, 0.64, 0.12], 6260: [-0.035, 0.67, 0.10], 2800: [0.035, 0.67, 0.10],   # nose, reye, leye
    4071: [-0.09, 0.64, 0.02], 583: [0.09, 0.64, 0.02],                              # rear, lear
    3216: [0.10, -0.96, 0.16], 3226: [0.15, -0.96, 0.13], 3387: [0.09, -0.96, -0.07],  # L toes, heel
    6617: [-0.10, -0.96, 0.16], 6624: [-0.15, -0.96, 0.13], 6787: [-0.09, -0.96, -0.07],
    6191: [-0.80, 0.45, 0.03], 5782: [-0.86, 0.45, 0.0], 5905: [-0.87, 0.45, -0.03],  # right fingertips
    6016: [-0.86, 0.45, -0.06], 6133: [-0.84, 0.45, -0.09],
    2746: [0.80, 0.45, 0.03], 2319: [0.86, 0.45, 0.0], 2445: [0.87, 0.45, -0.03],      # left fingertips
    2556: [0.86, 0.45, -0.06], 2673: [0.84, 0.45, -0.09],
}

# Points regressed by J_regressor_extra.npy, in its row order.
EXTRA_POINTS = np.array([
    [-0.08, -0.10, 0.00],  # right hip (LSP)
    [0.08, -0.10, 0.00],   # left hip (LSP)
    [0.00, 0.50, -0.01],   # neck (LSP)
    _HEAD_TOP * [1, 0.98, 1],  # top of head (LSP)
    [0.00, -0.02, 0.00],   # pelvis (MPII)
    [0.00, 0.44, -0.01],   # thorax (MPII)
    [0.00, 0.18, -0.01],   # spine (H36M)
    [0.00, 0.56, 0.07],    # jaw (H36M)
    [0.00, 0.66, 0.03],    # head (H36M)
])
# Points regressed by J_regressor_h36m.npy, rows in lib.utils.joints.H36M_17 order.
H36M_POINTS = np.array([
    REST_JOINTS[0], REST_JOINTS[1], REST_JOINTS[4], REST_JOINTS[7], REST_JOINTS[2], REST_JOINTS[5],
    REST_JOINTS[8], [0.00, 0.18, -0.01], REST_JOINTS[12], [0.00, 0.66, 0.03], _HEAD_TOP * [1, 0.98, 1],
    REST_JOINTS[16], REST_JOINTS[18], REST_JOINTS[20], REST_JOINTS[17], REST_JOINTS[19], REST_JOINTS[21],
])


def _uv_sphere() -> tuple[np.ndarray, np.ndarray]:
    """Unit directions (6890, 3) and faces (13776, 3) of a UV sphere with poles on +y / -y."""
    theta = np.linspace(0, np.pi, RINGS + 2)[1:-1]
    phi = np.linspace(0, 2 * np.pi, SEGMENTS, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing='ij')
    ring = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    dirs = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]])
    top, bottom = 0, NUM_VERTS - 1

    def vid(r, s):
        return 1 + r * SEGMENTS + (s % SEGMENTS)

    faces = []
    for s in range(SEGMENTS):
        faces.append([top, vid(0, s + 1), vid(0, s)])
        faces.append([bottom, vid(RINGS - 1, s), vid(RINGS - 1, s + 1)])
    for r in range(RINGS - 1):
        for s in range(SEGMENTS):
            a, b, c, d = vid(r, s), vid(r, s + 1), vid(r + 1, s), vid(r + 1, s + 1)
            faces += [[a, b, d], [a, d, c]]
    return dirs, np.asarray(faces, dtype=np.int64)


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of points (..., 3) to segment a-b."""
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(ab @ ab, 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[..., None] * ab), axis=-1)


def _body_surface(dirs: np.ndarray) -> np.ndarray:
    """Star-shaped body: along each direction from the chest, the farthest point inside any capsule."""
    steps = np.linspace(0.0, 1.3, 400)
    points = _STAR_CENTRE + dirs[:, None, :] * steps[None, :, None]          # (V, S, 3)
    inside = np.zeros(points.shape[:2], dtype=bool)
    for joint, end, radius in _CAPSULES:
        inside |= _segment_distance(points, REST_JOINTS[joint], np.asarray(end, float)) < radius
    last = np.where(inside.any(1), inside.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1), 0)
    return _STAR_CENTRE + dirs * steps[last][:, None]


def _place_vertex_joints(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Permute vertex indices so that each smplx vertex-joint id is the vertex nearest its target."""
    order = np.arange(NUM_VERTS)
    taken = set()
    for vid, target in VERTEX_JOINT_TARGETS.items():
        dist = np.linalg.norm(verts[order] - np.asarray(target), axis=1)
        dist[list(taken)] = np.inf
        nearest = int(np.argmin(dist))
        order[[vid, nearest]] = order[[nearest, vid]]
        taken.add(vid)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(NUM_VERTS)
    return verts[order], inverse[faces]


def _affine_regressor(verts: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Rows of weights (summing to 1) over the nearest vertices that reproduce ``points`` exactly.

    Uses the minimum-norm affine combination of the k nearest vertices, growing k until the k vertices
    surround the point well enough for the combination to be exact.
    """
    reg = np.zeros((len(points), len(verts)))
    for row, p in enumerate(points):
        order = np.argsort(np.linalg.norm(verts - p, axis=1))
        for k in (12, 24, 48, 96, 192):
            idx = order[:k]
            a = np.vstack([verts[idx].T, np.ones(k)])         # (4, k)
            try:
                w = a.T @ np.linalg.solve(a @ a.T, np.append(p, 1.0))
            except np.linalg.LinAlgError:                       # coplanar neighbours (numpy >= 2.3 raises)
                continue
            if np.abs(w).max() < 3.0 and np.allclose(verts[idx].T @ w, p, atol=1e-9):
                break
        reg[row, idx] = w
    return reg


def _skinning_weights(verts: np.ndarray) -> np.ndarray:
    """(V, 24) weights from the distance of each vertex to the bone each joint drives."""
    dist = np.full((len(verts), 24), np.inf)
    for joint, end, _ in _CAPSULES:
        dist[:, joint] = np.minimum(dist[:, joint], _segment_distance(verts, REST_JOINTS[joint], np.asarray(end)))
    for joint in range(24):  # joints that start no capsule (hands' children, spine3, ...) act at their point
        if np.isinf(dist[:, joint]).all():
            dist[:, joint] = np.linalg.norm(verts - REST_JOINTS[joint], axis=1) + 0.02
    logits = -(dist - dist.min(1, keepdims=True)) / 0.02
    logits[logits < np.sort(logits, axis=1)[:, -4:-3]] = -np.inf               # keep the 4 nearest bones
    w = np.exp(logits)
    return w / w.sum(1, keepdims=True)


def _smooth_field(rng: np.random.Generator, verts: np.ndarray, n: int, scale: float) -> np.ndarray:
    """(V, 3, n) smooth random displacement fields (random low-frequency sinusoids of position)."""
    freq = rng.normal(size=(n, 3, 3)) * 4.0
    phase = rng.uniform(0, 2 * np.pi, size=(n, 3))
    amp = rng.normal(size=(n, 3)) * scale
    field = amp[None] * np.sin(np.einsum('vk,nck->vnc', verts, freq) + phase[None])   # (V, n, 3)
    return field.transpose(0, 2, 1)


def make_smpl_model(seed: int = 0, num_betas: int = 10, gender: str = 'neutral') -> dict:
    """An SMPL model dict in the v1.0.0 pickle layout (plain numpy / scipy arrays)."""
    rng = np.random.default_rng(seed + {'neutral': 0, 'male': 1, 'female': 2}[gender])
    dirs, faces = _uv_sphere()
    verts, faces = _place_vertex_joints(_body_surface(dirs), faces)
    width = {'neutral': 1.0, 'male': 1.05, 'female': 0.95}[gender]
    verts = verts * [width, 1.0, 1.0]
    joints = REST_JOINTS * [width, 1.0, 1.0]

    centred = verts - verts.mean(0)
    radial = np.zeros_like(verts)
    radial[:, [0, 2]] = centred[:, [0, 2]]
    shapedirs = np.concatenate([
        (centred * [0.0, 0.06, 0.0])[..., None],            # beta 0: height
        (radial * 0.08)[..., None],                         # beta 1: girth
        _smooth_field(rng, verts, num_betas - 2, 0.006),    # the rest: small smooth changes
    ], axis=2)
    posedirs = _smooth_field(rng, verts, 207, 0.002)
    return {
        'v_template': verts,
        'f': faces.astype(np.uint32),
        'J_regressor': scipy.sparse.csc_matrix(_affine_regressor(verts, joints)),
        'kintree_table': np.stack([np.where(PARENTS < 0, 4294967295, PARENTS), np.arange(24)]).astype(np.int64),
        'weights': _skinning_weights(verts),
        'posedirs': posedirs,
        'shapedirs': shapedirs,
        'J': joints,
        'bs_style': 'lbs',
        'bs_type': 'lrotmin',
    }


def _rotation_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def make_mean_params(seed: int = 0) -> dict:
    """SPIN-style mean parameters: root rotated 180 deg about x (camera frame, y down), a mildly bent body."""
    rng = np.random.default_rng(seed + 10)
    rotmats = [_rotation_x(np.pi)]
    for _ in range(23):
        aa = rng.normal(scale=0.08, size=3)
        angle = np.linalg.norm(aa)
        k = np.array([[0, -aa[2], aa[1]], [aa[2], 0, -aa[0]], [-aa[1], aa[0], 0]]) / angle
        rotmats.append(np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k)
    pose = np.stack(rotmats)[:, :, :2].reshape(-1)  # interleaved 6D: rows of the 3x2 first-two-columns block
    # dtypes of SPIN's file: pose and cam float32, shape float64
    return {'pose': pose.astype(np.float32), 'shape': rng.normal(scale=0.1, size=10),
            'cam': np.array([0.9, 0.0, 0.0], dtype=np.float32)}


def make_spin_checkpoint(seed: int = 0) -> dict:
    """SPIN ``model_checkpoint.pt`` layout with random weights (ResNet-50 trunk + IEF regressor)."""
    torch.manual_seed(seed)
    trunk = torchvision.models.resnet50(weights=None).state_dict()
    model = {k: v for k, v in trunk.items() if not k.startswith('fc.')}
    mean = make_mean_params(seed)
    for name, (out_dim, in_dim, gain) in {'fc1': (1024, 2048 + 157, 1.0), 'fc2': (1024, 1024, 1.0),
                                          'decpose': (144, 1024, 0.01), 'decshape': (10, 1024, 0.01),
                                          'deccam': (3, 1024, 0.01)}.items():
        weight = torch.empty(out_dim, in_dim)
        torch.nn.init.xavier_uniform_(weight, gain=gain)
        model[f'{name}.weight'] = weight
        model[f'{name}.bias'] = torch.zeros(out_dim)
    model['init_pose'] = torch.from_numpy(mean['pose'])[None]
    model['init_shape'] = torch.tensor(mean['shape'], dtype=torch.float32)[None]
    model['init_cam'] = torch.tensor(mean['cam'], dtype=torch.float32)[None]
    return {'model': model, 'optimizer': {}, 'epoch': 0, 'batch_idx': 0, 'batch_size': 64,
            'total_step_count': 0}


def _write_pickle(obj, path: Path) -> None:
    atomic_write(path, pickle.dumps(obj, protocol=2))


def _pickle_with_chumpy(model: dict, path: Path) -> None:
    """Pickle ``model`` with its dense arrays wrapped in objects of class ``chumpy.ch.Ch``, as the original
    SMPL files are. A throwaway module stands in for chumpy while pickling, so chumpy is not needed."""
    chumpy, chumpy_ch = types.ModuleType('chumpy'), types.ModuleType('chumpy.ch')
    ch_class = type('Ch', (), {'__module__': 'chumpy.ch'})
    chumpy_ch.Ch = ch_class
    chumpy.ch = chumpy_ch
    saved = {name: sys.modules.get(name) for name in ('chumpy', 'chumpy.ch')}
    sys.modules.update({'chumpy': chumpy, 'chumpy.ch': chumpy_ch})
    try:
        wrapped = dict(model)
        for key in ('v_template', 'weights', 'posedirs', 'shapedirs', 'J'):
            obj = ch_class.__new__(ch_class)
            obj.__dict__.update({'x': np.asarray(model[key]), '_dirty_vars': set(), 'make_dense': False,
                                 'make_sparse': False})
            wrapped[key] = obj
        _write_pickle(wrapped, path)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


STAND_IN_MARKER = 'GENERATED_STAND_INS'


def claim_for_stand_ins(folder: Path) -> None:
    """Create ``folder`` for generated files and mark it; refuse a folder that already holds other files.

    Stand-ins have the real files' names, so writing them next to real assets would silently replace those.

    Raises:
        UserError: ``folder`` is not empty and was not made by these generators.
    """
    if folder.is_dir() and any(folder.iterdir()) and not (folder / STAND_IN_MARKER).is_file():
        raise UserError(f"{folder} already holds files that are not generated stand-ins; refusing to overwrite "
                        f"them: pick another output folder (e.g. data/synthetic)")
    atomic_write(folder / STAND_IN_MARKER, 'Files in this folder are generated stand-ins, not the licensed '
                 'originals (scripts/make_synthetic_assets.py, make_synthetic_data.py).\n')


def make_synthetic_assets(out_dir: str | Path, seed: int = 0, spin: bool = True, variants: bool = False) -> Path:
    """Write the synthetic base_data files under ``out_dir`` (usable as DATA_ROOT); returns ``out_dir``."""
    out_dir = Path(out_dir)
    base = out_dir / 'base_data'
    claim_for_stand_ins(base)
    neutral = make_smpl_model(seed, gender='neutral')
    _write_pickle(neutral, base / 'SMPL_NEUTRAL.pkl')
    for gender in ('male', 'female'):
        _write_pickle(make_smpl_model(seed, gender=gender), base / f'SMPL_{gender.upper()}.pkl')
    with atomic_path(base / 'smpl_mean_params.npz') as tmp:
        np.savez(tmp, **make_mean_params(seed))
    verts = neutral['v_template']
    for name, points in (('J_regressor_extra.npy', EXTRA_POINTS), ('J_regressor_h36m.npy', H36M_POINTS)):
        with atomic_path(base / name) as tmp:
            np.save(tmp, _affine_regressor(verts, points))
    if spin:
        with atomic_path(base / 'spin_model_checkpoint.pth.tar') as tmp:
            torch.save(make_spin_checkpoint(seed), tmp)
    if variants:
        v110 = out_dir / 'smpl_variants' / 'v1.1.0'
        v110.mkdir(parents=True, exist_ok=True)
        extra = _smooth_field(np.random.default_rng(seed + 300), neutral['v_template'], 290, 0.002)
        model300 = dict(neutral, shapedirs=np.concatenate([neutral['shapedirs'], extra], axis=2))
        _write_pickle(model300, v110 / 'SMPL_NEUTRAL.pkl')
        chumpy_dir = out_dir / 'smpl_variants' / 'chumpy'
        chumpy_dir.mkdir(parents=True, exist_ok=True)
        _pickle_with_chumpy(neutral, chumpy_dir / 'SMPL_NEUTRAL.pkl')
    return out_dir


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='data/synthetic',
                        help='DATA_ROOT to write base_data/ into (default: data/synthetic, as configs/synthetic.yaml)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--no-spin', action='store_true', help='skip the 100 MB SPIN checkpoint')
    parser.add_argument('--variants', action='store_true', help='also write the 300-beta and chumpy SMPL pkls')
    args = parser.parse_args(argv)
    out = make_synthetic_assets(args.out, args.seed, spin=not args.no_spin, variants=args.variants)
    print(f'synthetic assets written to {out / "base_data"}')


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from lib.core.cli import run_main

    run_main(main)

"""GLB and BVH export: files read back with pygltflib / a small BVH parser reproduce SMPL exactly."""
import re
from types import SimpleNamespace

import joblib
import numpy as np
import pygltflib
import pytest
import torch
from scipy.spatial.transform import Rotation
from smplx import SMPLLayer

from lib.core.config import REPO_ROOT, load_config
from lib.core.errors import UserError
from lib.demo.camera import CAMERA_KEYS
from lib.demo.world import WORLD_KEYS
from lib.demo.export import export_space, write_exports
from lib.demo.export.bvh import continuous_euler
from lib.demo.export.motion import EXPORT_FRAMES, body_motion
from lib.demo.inference import RESULT_KEYS
from lib.vis.renderer import FLIP_X
from lib.demo.pipeline import DemoOptions, run_demo
from lib.demo.smoothing import OneEuro
from lib.models import build_model, save_checkpoint
from lib.models.smpl import SMPL
from lib.utils.geometry import rotmat_to_euler_zxy
from lib.utils.joints import SMPL_24, SPIN_SMPL_ROOT
from scripts.make_synthetic_video import make_synthetic_video
from test_demo import _cli   # demo.py's main as the command line runs it: (exit code, stderr)

FRAMES, WIDTH, HEIGHT, FPS = 24, 320, 240, 25.0
GAP = (10, 11)   # frames where the second person has no box
CONFIG = str(REPO_ROOT / 'configs' / 'repr_table1_3dpw.yaml')
OPTS = ['DEVICE', 'cpu', 'DEMO.MIN_TRACK_LEN', '10', 'DEMO.FILL_GAPS', 'False',
        'MODEL.d_model', '128', 'MODEL.n_layers', '1', 'MODEL.short_n_layers', '1']


@pytest.fixture(scope='module')
def run(synthetic_root, tmp_path_factory):
    """The demo with --export glb,bvh on a generated video of two people (person 2 untracked in GAP), with a
    random small GLoT and a perspective overlay video; ``argv`` builds demo.py command lines for it."""
    folder = tmp_path_factory.mktemp('export')
    video = make_synthetic_video(folder / 'two.mp4', synthetic_root, num_frames=FRAMES, width=WIDTH,
                                 height=HEIGHT, fps=FPS, people=2)
    rows = ['frame,x1,y1,x2,y2,score,track_id']
    rows += [f'{f},{x1:.2f},{y1:.2f},{x2:.2f},{y2:.2f},1,{k + 1}' for k, person in enumerate(video.boxes)
             for f, (x1, y1, x2, y2) in enumerate(person) if not (k == 1 and f in GAP)]
    (folder / 'boxes.csv').write_text('\n'.join(rows) + '\n')
    opts = ['DATA_ROOT', str(synthetic_root), *OPTS]
    cfg = load_config(CONFIG, opts)
    torch.manual_seed(1)
    save_checkpoint(folder / 'glot.pth.tar', build_model(cfg))

    def argv(output_folder, export, boxes=folder / 'boxes.csv'):
        return ['--vid_file', str(video.path), '--cfg', CONFIG, '--checkpoint', str(folder / 'glot.pth.tar'),
                '--output_folder', str(output_folder), '--bbox_file', str(boxes), '--export', export, *opts]

    run_demo(load_config(CONFIG, [*opts, 'DEMO.CAMERA', 'perspective', 'DEMO.EXPORT', "['glb', 'bvh']"]), video.path,
             folder / 'out', DemoOptions(bbox_file=str(folder / 'boxes.csv')), folder / 'glot.pth.tar')
    out = folder / 'out' / 'two'
    base = synthetic_root / 'base_data'
    reference = SMPL(base, j_regressor_extra=base / 'J_regressor_extra.npy').double()
    reference.posedirs.zero_()
    return SimpleNamespace(out=out, cfg=cfg, body=SMPL(base, j_regressor_extra=base / 'J_regressor_extra.npy'),
                           reference=reference, results=joblib.load(out / 'glot_output.pkl'), argv=argv,
                           folder=folder)


def _smpl_reference(run, result, frame, rows=slice(None)):
    """SMPL without pose correctives (posedirs zeroed), median betas, the result's pose (scipy's axis-angle
    conversion), transl = trans_cam, in the export frame: vertices (n, 6890, 3) and the 24 joints (n, 24, 3)."""
    pose = np.asarray(result['pose'][rows], dtype=np.float64).reshape(-1, 24, 3)
    rotmats = torch.from_numpy(Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(-1, 24, 3, 3))
    betas = torch.from_numpy(np.median(result['betas'], axis=0)).double().expand(len(pose), -1)
    out = SMPLLayer.forward(run.reference, betas=betas, body_pose=rotmats[:, 1:], global_orient=rotmats[:, :1],
                            transl=torch.from_numpy(np.asarray(result['trans_cam'][rows], dtype=np.float64)),
                            pose2rot=False)   # smplx's own forward: the 24 kinematic joints come first
    flip = EXPORT_FRAMES[frame]
    return out.vertices.numpy() @ flip.T, out.joints[:, :24].numpy() @ flip.T


# ---------------------------------------------------------------------------------------------------------
# Reading the files back
# ---------------------------------------------------------------------------------------------------------

_NUMPY = {pygltflib.FLOAT: np.float32, pygltflib.UNSIGNED_BYTE: np.uint8, pygltflib.UNSIGNED_SHORT: np.uint16,
          pygltflib.UNSIGNED_INT: np.uint32}
_WIDTH = {'SCALAR': 1, 'VEC2': 2, 'VEC3': 3, 'VEC4': 4, 'MAT4': 16}


def _accessor(gltf, blob, index):
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    dtype = np.dtype(_NUMPY[acc.componentType])
    count = acc.count * _WIDTH[acc.type]
    data = np.frombuffer(blob, dtype, count, view.byteOffset + (acc.byteOffset or 0))
    return data.reshape(acc.count, -1).astype(np.float64) if _WIDTH[acc.type] > 1 else data.astype(np.float64)


def _matrix(translation=None, rotation=None, scale=None):
    m = np.eye(4)
    if rotation is not None:
        m[:3, :3] = Rotation.from_quat(rotation).as_matrix()     # glTF and scipy: (x, y, z, w)
    if scale is not None:
        m[:3, :3] = m[:3, :3] * np.asarray(scale)
    if translation is not None:
        m[:3, 3] = translation
    return m


def _sample(times, values, t, step):
    """A glTF sampler at time t (keys at the sampled times, or the step value before t)."""
    k = np.searchsorted(times, t + 1e-6) - 1
    assert step or abs(times[k] - t) < 1e-6
    return values[k]


def skin_glb(path):
    """Every person of a GLB skinned by linear blend skinning at each frame: {person node name: (frames,
    vertices (n, V, 3), visible (num_frames,))} with frames from the animation's keys."""
    gltf = pygltflib.GLTF2.load_binary(str(path))
    blob = gltf.binary_blob()
    (animation,) = gltf.animations
    channels = {}
    for channel in animation.channels:
        sampler = animation.samplers[channel.sampler]
        channels[channel.target.node, channel.target.path] = (
            _accessor(gltf, blob, sampler.input), _accessor(gltf, blob, sampler.output), sampler.interpolation)
    parent = {c: p for p, node in enumerate(gltf.nodes) for c in (node.children or [])}
    fps = gltf.asset.extras['fps']
    people = {}
    for mesh_node in [n for n in gltf.nodes if n.skin is not None]:
        skin = gltf.skins[mesh_node.skin]
        primitive = gltf.meshes[mesh_node.mesh].primitives[0]
        attributes = vars(primitive.attributes)
        rest = _accessor(gltf, blob, attributes['POSITION'])
        weights = np.zeros((len(rest), len(skin.joints)))
        for s in range(4):
            if attributes.get(f'JOINTS_{s}') is not None:
                joints = _accessor(gltf, blob, attributes[f'JOINTS_{s}']).astype(int)
                np.add.at(weights, (np.arange(len(rest))[:, None], joints),
                          _accessor(gltf, blob, attributes[f'WEIGHTS_{s}']))
        inverse_bind = _accessor(gltf, blob, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
        person = parent[skin.joints[0]]
        times, _, _ = channels[skin.joints[0], 'translation']
        frames = np.round(times * fps).astype(int)
        all_times, scale, interpolation = channels[person, 'scale']
        assert interpolation == 'STEP' and len(all_times) == gltf.asset.extras['frame_count']
        verts = []
        for t in times:
            def world(n):
                node = gltf.nodes[n]
                local = _matrix(*[_sample(*channels[n, path][:2], t, path == 'scale') if (n, path) in channels
                                  else getattr(node, path) for path in ('translation', 'rotation', 'scale')])
                return world(parent[n]) @ local if n in parent else local
            skinning = np.stack([world(j) for j in skin.joints]) @ inverse_bind
            blended = np.einsum('vj,jab->vab', weights, skinning)
            verts.append(np.einsum('vab,vb->va', blended[:, :3, :3], rest) + blended[:, :3, 3])
        people[gltf.nodes[person].name] = (frames, np.stack(verts), scale[:, 0])
    return people


def parse_bvh(text):
    """A BVH file's joint names, parents, offsets, channels and motion (frames x values)."""
    names, parents, offsets, channels, stack = [], [], [], [], []
    lines = iter(text.splitlines())
    for line in lines:
        words = line.split()
        if words[0] in ('ROOT', 'JOINT'):
            names.append(words[1])
            parents.append(stack[-1] if stack else -1)
        elif words[0] == 'End':
            names.append(None)
            parents.append(stack[-1])
        elif words[0] == '{':
            stack.append(len(names) - 1)
        elif words[0] == '}':
            stack.pop()
        elif words[0] == 'OFFSET':
            offsets.append([float(w) for w in words[1:]])
        elif words[0] == 'CHANNELS':
            channels.append(words[2:])
        elif words[0] == 'MOTION':
            frames = int(next(lines).split()[1])
            frame_time = float(next(lines).split()[2])
            motion = np.array([[float(w) for w in next(lines).split()] for _ in range(frames)])
            return SimpleNamespace(names=names, parents=parents, offsets=np.array(offsets), channels=channels,
                                   motion=motion, frame_time=frame_time)
    raise AssertionError('no MOTION section')


def bvh_joint_positions(bvh):
    """Forward kinematics of a parsed BVH: world positions (frames, joints, 3) of the named joints, in file
    order; each joint's Euler channels compose in their listed order (R = R1 R2 R3, intrinsic)."""
    joints = [i for i, name in enumerate(bvh.names) if name is not None]
    out = np.zeros((len(bvh.motion), len(joints), 3))
    for f, row in enumerate(bvh.motion):
        world, column = {}, 0
        for k, j in enumerate(joints):
            names = bvh.channels[k]
            values = dict(zip(names, row[column:column + len(names)]))
            column += len(names)
            order = ''.join(c[0] for c in names if c.endswith('rotation'))
            local = np.eye(4)
            angles = [values[f'{a}rotation'] for a in order]
            local[:3, :3] = Rotation.from_euler(order.upper(), angles, degrees=True).as_matrix()
            local[:3, 3] = bvh.offsets[j] + np.array([values.get(f'{a}position', 0.0) for a in 'XYZ'])
            world[j] = (world[bvh.parents[j]] @ local) if bvh.parents[j] >= 0 else local
            out[f, k] = world[j][:3, 3]
    return out


# ---------------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------------

def test_outputs_and_camera_keys(run):
    files = sorted(p.relative_to(run.out).as_posix() for p in run.out.rglob('*') if p.is_file()
                   and 'cache' not in p.parts)
    assert files == ['bvh/person1_frames0-23.bvh', 'bvh/person2_frames0-9.bvh', 'bvh/person2_frames12-23.bvh',
                     'config.yaml', 'glot_output.pkl', 'log.txt', 'two_glot.glb', 'two_glot_output.mp4']
    assert sorted(run.results) == [1, 2]
    for res in run.results.values():
        assert tuple(res) == RESULT_KEYS + ('frame_filled',) + CAMERA_KEYS + WORLD_KEYS
        n = len(res['frame_ids'])
        assert res['trans_cam'].shape == (n, 3) and res['joints2d_img'].shape == (n, 49, 2)
        assert res['focal_length'] == 400.0 and res['principal_point'].tolist() == [160, 120]
        np.testing.assert_allclose(res['trans_cam'][:, :2], res['orig_cam'][:, 2:])
        # The root joint in the image: where orig_cam puts it, to float precision.
        sx, sy, tx, ty = res['orig_cam'].T
        root = res['joints3d'][:, SPIN_SMPL_ROOT]
        weak = np.stack([(1 + sx * (root[:, 0] + tx)) * WIDTH / 2, (1 + sy * (root[:, 1] + ty)) * HEIGHT / 2], 1)
        np.testing.assert_allclose(res['joints2d_img'][:, SPIN_SMPL_ROOT], weak, atol=1e-3)
    assert run.results[2]['frame_ids'].tolist() == [f for f in range(FRAMES) if f not in GAP]


@pytest.mark.parametrize('frame, units', [('yup', 'cm'), ('camera', 'm')])
def test_glb_skinning_equals_smpl(run, tmp_path, frame, units):
    cfg = load_config(CONFIG, ['DATA_ROOT', str(run.cfg.DATA_ROOT), *OPTS, 'DEMO.EXPORT_FRAME', frame,
                               'DEMO.BVH_UNITS', units])
    (path,) = write_exports(('glb',), run.results, run.body, cfg.DEMO, FPS, FRAMES, WIDTH, HEIGHT, tmp_path, 'v')
    people = skin_glb(path)
    assert sorted(people) == ['person_1', 'person_2']
    for tid, res in run.results.items():
        frames, verts, visible = people[f'person_{tid}']
        assert frames.tolist() == res['frame_ids'].tolist()
        assert visible.tolist() == [float(f in res['frame_ids']) for f in range(FRAMES)]
        expected, _ = _smpl_reference(run, res, frame)
        assert np.abs(verts - expected).max() < 1e-4, np.abs(verts - expected).max()
    gltf = pygltflib.GLTF2.load_binary(str(path))
    camera = gltf.cameras[0].perspective
    assert np.isclose(HEIGHT / 2 / np.tan(camera.yfov / 2), 400.0) and np.isclose(camera.aspectRatio, 4 / 3)
    assert [n.name for n in gltf.nodes[2:26]] == list(SMPL_24)


@pytest.mark.parametrize('frame, units', [('yup', 'cm'), ('camera', 'm')])
def test_bvh_forward_kinematics_equals_smpl_joints(run, tmp_path, frame, units):
    cfg = load_config(CONFIG, ['DATA_ROOT', str(run.cfg.DATA_ROOT), *OPTS, 'DEMO.EXPORT_FRAME', frame,
                               'DEMO.BVH_UNITS', units])
    paths = write_exports(('bvh',), run.results, run.body, cfg.DEMO, FPS, FRAMES, WIDTH, HEIGHT, tmp_path, 'v')
    assert len(paths) == 3
    scale = {'cm': 100.0, 'm': 1.0}[units]
    for path in paths:
        tid, first, last = map(int, re.fullmatch(r'person(\d+)_frames(\d+)-(\d+)\.bvh', path.name).groups())
        res = run.results[tid]
        rows = slice(*np.searchsorted(res['frame_ids'], [first, last + 1]))
        bvh = parse_bvh(path.read_text())
        assert bvh.frame_time == pytest.approx(1 / FPS) and len(bvh.motion) == last - first + 1
        named = [n for n in bvh.names if n is not None]
        assert sorted(named) == sorted(SMPL_24) and bvh.names[0] == 'hips'
        _, joints = _smpl_reference(run, res, frame, rows)
        order = [SMPL_24.index(n) for n in named]
        positions = bvh_joint_positions(bvh) / scale
        assert np.abs(positions - joints[:, order]).max() < 1e-4, np.abs(positions - joints[:, order]).max()
        # OFFSETs are the person's rest bones.
        motion = body_motion(tid, res, run.body, frame)
        joint_rows = [i for i, n in enumerate(bvh.names) if n is not None]
        np.testing.assert_allclose(bvh.offsets[joint_rows][1:] / scale, motion.bones[order][1:], atol=1e-6)


def test_smoothing_filters_each_run_of_frames(run, tmp_path):
    cfg = load_config(CONFIG, ['DATA_ROOT', str(run.cfg.DATA_ROOT), *OPTS, 'DEMO.SMOOTH', 'True'])
    filt = OneEuro(cfg.DEMO.SMOOTH_MIN_CUTOFF, cfg.DEMO.SMOOTH_BETA, cfg.DEMO.SMOOTH_D_CUTOFF, FPS)
    res = run.results[2]
    plain, smooth = body_motion(2, res, run.body), body_motion(2, res, run.body, smoothing=filt)
    # The filter commutes with the change of frame, and the two runs of frames around the gap are filtered
    # separately.
    for rows in (slice(0, GAP[0]), slice(GAP[0], None)):
        np.testing.assert_allclose(smooth.rotations[rows], filt.rotations(plain.rotations[rows]), atol=1e-9)
        np.testing.assert_allclose(smooth.root_position[rows], filt.vectors(plain.root_position[rows, None])[:, 0],
                                   atol=1e-9)
    assert np.abs(smooth.rotations - plain.rotations).max() > 1e-3
    # GLB and BVH carry exactly the smoothed motion.
    paths = write_exports(('glb', 'bvh'), {2: res}, run.body, cfg.DEMO, FPS, FRAMES, WIDTH, HEIGHT, tmp_path, 'v')
    flip = EXPORT_FRAMES['yup']
    rotations = smooth.rotations.copy()
    rotations[:, 0] = flip.T @ rotations[:, 0]
    smoothed = {**res, 'pose': Rotation.from_matrix(rotations.reshape(-1, 3, 3)).as_rotvec().reshape(-1, 72),
                'trans_cam': smooth.root_position @ flip - smooth.rest_joints[0]}
    _, verts, _ = skin_glb(paths[0])['person_2']
    assert np.abs(verts - _smpl_reference(run, smoothed, 'yup')[0]).max() < 1e-4
    bvh = parse_bvh(paths[1].read_text())
    hips = bvh_joint_positions(bvh)[:, [n for n in bvh.names if n is not None].index('hips')] / 100
    np.testing.assert_allclose(hips, smooth.root_position[:GAP[0]], atol=1e-6)


def _pan(frames=FRAMES):
    """World-to-camera rotations ``(frames, 3, 3)``: a camera panning 30 degrees and tilting 5 over the video."""
    angles = np.stack([np.linspace(-15, 15, frames), np.linspace(0, 5, frames)], axis=1)
    return Rotation.from_euler('YX', angles, degrees=True).as_matrix().transpose(0, 2, 1)


def test_export_space_auto_follows_the_camera():
    still = np.tile(np.eye(3), (FRAMES, 1, 1))
    assert [export_space('auto', _pan()), export_space('auto', still), export_space('auto', None)] == \
        ['world', 'camera', 'camera']
    assert [export_space('world', still), export_space('camera', _pan())] == ['world', 'camera']


@pytest.mark.parametrize('frame', ['yup', 'camera'])
def test_world_glb_camera_animation_overlays_the_camera_frame(run, tmp_path, frame):
    """World-space export of a panning camera: the camera node's rotation keys round-trip (one per video
    frame, ``F cam_R^T G``); the world-frame meshes seen through the animated camera project onto the same
    pixels as the camera-frame SMPL bodies; the BVH root is the pelvis in the world."""
    cam_R = _pan()
    cfg = load_config(CONFIG, ['DATA_ROOT', str(run.cfg.DATA_ROOT), *OPTS, 'DEMO.EXPORT_FRAME', frame])
    glb, *bvh_paths = write_exports(('glb', 'bvh'), run.results, run.body, cfg.DEMO, FPS, FRAMES, WIDTH, HEIGHT,
                                    tmp_path, 'v', cam_R)
    gltf = pygltflib.GLTF2.load_binary(str(glb))
    blob = gltf.binary_blob()
    assert gltf.nodes[0].name == 'camera' and gltf.asset.extras['export_space'] == 'world'
    (channel,) = [c for c in gltf.animations[0].channels if c.target.node == 0]
    sampler = gltf.animations[0].samplers[channel.sampler]
    assert channel.target.path == 'rotation' and sampler.interpolation == 'LINEAR'
    np.testing.assert_allclose(_accessor(gltf, blob, sampler.input), np.arange(FRAMES) / FPS, atol=1e-6)
    camera = Rotation.from_quat(_accessor(gltf, blob, sampler.output)).as_matrix()     # camera -> export axes
    flip = EXPORT_FRAMES[frame]
    np.testing.assert_allclose(camera, flip @ cam_R.transpose(0, 2, 1) @ FLIP_X, atol=1e-6)
    focal = 400.0
    for tid, res in run.results.items():
        frames, verts, _ = skin_glb(glb)[f'person_{tid}']
        local = np.einsum('nji,nvj->nvi', camera[frames], verts)      # glTF camera axes: y up, looking down -z
        through_camera = np.stack([WIDTH / 2 + focal * local[..., 0] / -local[..., 2],
                                   HEIGHT / 2 - focal * local[..., 1] / -local[..., 2]], axis=-1)
        in_camera, _ = _smpl_reference(run, res, 'camera')                  # camera frame: x right, y down
        expected = focal * in_camera[..., :2] / in_camera[..., 2:] + np.array([WIDTH / 2, HEIGHT / 2])
        assert np.abs(through_camera - expected).max() < 0.02, np.abs(through_camera - expected).max()
        # The meshes do move in the world: the camera's pan is taken out of them.
        assert np.abs(verts - in_camera @ flip.T).max() > 0.3
    bvh = parse_bvh(bvh_paths[0].read_text())                                # person 1, every frame, cm
    hips = bvh_joint_positions(bvh)[:, [n for n in bvh.names if n is not None].index('hips')] / 100
    res = run.results[1]
    rest_pelvis = body_motion(1, res, run.body).rest_joints[0]
    pelvis_world = np.einsum('nji,nj->ni', cam_R, rest_pelvis + res['trans_cam'].astype(np.float64))
    np.testing.assert_allclose(hips, pelvis_world @ flip.T, atol=1e-5)


def test_euler_zxy_round_trip_and_continuity():
    rotations = Rotation.random(200, random_state=1).as_matrix()
    locked = Rotation.from_euler('ZXY', [[0.3, 90, 0.2], [-0.5, -90, 1.0], [10, 89.99999, -20]], degrees=True)
    rotations = np.concatenate([rotations, locked.as_matrix()])
    angles = rotmat_to_euler_zxy(torch.from_numpy(rotations)).numpy()
    np.testing.assert_allclose(Rotation.from_euler('ZXY', angles).as_matrix(), rotations, atol=1e-9)
    # A smooth turn about a tilted axis through +-180 degrees: continuous angles, same rotations.
    turn = Rotation.from_rotvec(np.linspace(0, 3 * np.pi, 60)[:, None] * np.array([0.3, 0.9, 0.2]) / np.linalg.norm(
        [0.3, 0.9, 0.2])).as_matrix()
    raw = rotmat_to_euler_zxy(torch.from_numpy(turn)).numpy()[:, None]
    smooth = continuous_euler(raw)
    assert np.abs(np.diff(raw, axis=0)).max() > 3 and np.abs(np.diff(smooth, axis=0)).max() < 0.5
    np.testing.assert_allclose(Rotation.from_euler('ZXY', smooth[:, 0]).as_matrix(), turn, atol=1e-9)


def test_export_errors_are_one_line(run, capsys, tmp_path):
    """An unknown format, or an export of a run where nobody is tracked: one error line, exit 2, no files."""
    (tmp_path / 'short.csv').write_text('\n'.join(f'{f},100,30,160,220' for f in range(5)))
    cases = [(run.argv(tmp_path / 'out', 'glb,fbx'), "DEMO.EXPORT ['glb', 'fbx'] must list only of glb, bvh"),
             (run.argv(tmp_path / 'out', 'glb', tmp_path / 'short.csv'), 'no person found')]
    for argv, message in cases:
        code, err = _cli(argv, capsys)
        errors = [line for line in err.strip().splitlines() if line.startswith('error:')]   # besides log lines
        assert code == 2 and errors == [err.strip().splitlines()[-1]] and message in errors[0], err
        assert not (tmp_path / 'out').exists()
    with pytest.raises(UserError, match='nothing to export: the run has no tracked person'):
        write_exports(('glb',), {}, run.body, run.cfg.DEMO, FPS, FRAMES, WIDTH, HEIGHT, tmp_path / 'out', 'v')
    assert not (tmp_path / 'out').exists()

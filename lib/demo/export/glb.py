"""GLB export: the tracked people of a video as skinned SMPL meshes with one animation, in one binary glTF file.

``<name>_glot.glb`` (glTF 2.0; metres; the ``DEMO.EXPORT_FRAME`` axes of the ``DEMO.EXPORT_SPACE`` space of
``lib/demo/export/motion.py``):

- node ``camera``: the demo's pinhole (``lib/demo/camera.py``; vertical field of view ``2 atan(H / 2f)``,
  aspect ``W / H``) at the origin; looking through it shows each person where the video shows them. In world
  space it turns with the estimated camera: the animation ``glot`` has its rotation at every video frame,
  ``F cam_R_t^T G`` (``F`` the export frame, ``G`` = diag(1, -1, -1) from glTF's camera axes, y up and
  looking down -z, to the demo's camera axes), so the view through it still matches the video.
- per person (track id ``k``): node ``person_k``, whose child is the skeleton: the 24 SMPL joints, named as
  ``lib.utils.joints.SMPL_24``, with the rest bone vectors as translations; and node ``person_k_body`` (at
  the scene root) with the skinned mesh: the person's rest body (median betas baked in) with vertex normals,
  SMPL's skinning weights (every nonzero one: ``JOINTS_1``/``WEIGHTS_1`` follow ``JOINTS_0``/``WEIGHTS_0``
  when a vertex has more than four), and inverse bind matrices (a translation by minus the rest joint).
- one animation ``glot``, keyframe times ``frame / fps`` seconds: every joint's rotation and the root's
  translation have one key per tracked frame (linear interpolation); ``person_k``'s scale is 1 on the
  person's tracked frames and 0 (hidden) on every other frame of the video (step interpolation), so frames
  without the person show nothing rather than invented motion.
- ``asset.extras``: ``fps``, ``frame_count``, ``image_size`` ``[W, H]``, ``focal_length`` (pixels),
  ``export_frame``, ``export_space`` (``camera`` or ``world``).

The container is written with pygltflib; the skinning data (weights, bind matrices, animation) is computed
here so that linear blend skinning of the file reproduces the SMPL body exactly (tests/test_export.py).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pygltflib as gl
import torch

from lib.core.io import atomic_write
from lib.demo.export.motion import EXPORT_FRAMES, BodyMotion
from lib.vis.renderer import FLIP_X, track_color, vertex_normals
from lib.utils.geometry import rotmat_to_quat

_COMPONENT = {np.dtype(np.float32): gl.FLOAT, np.dtype(np.uint32): gl.UNSIGNED_INT,
              np.dtype(np.uint16): gl.UNSIGNED_SHORT, np.dtype(np.uint8): gl.UNSIGNED_BYTE}
_TYPE = {1: gl.SCALAR, 2: gl.VEC2, 3: gl.VEC3, 4: gl.VEC4, 16: gl.MAT4}


class _Binary:
    """The GLB binary chunk, built as buffer views and accessors of a :class:`pygltflib.GLTF2`."""

    def __init__(self, gltf: gl.GLTF2):
        self.gltf = gltf
        self.chunks: list[bytes] = []
        self.length = 0

    def add(self, array: np.ndarray, target: int | None = None, bounds: bool = False) -> int:
        """Append ``array (count, ...)`` as one accessor (component type from its dtype, element type from
        its size per row; a MAT4 row is stored column-major by the caller); returns the accessor index."""
        array = np.ascontiguousarray(array)
        rows = array.reshape(len(array), -1)
        data = array.tobytes()
        self.gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=self.length, byteLength=len(data),
                                                   target=target))
        padded = data + b'\0' * (-len(data) % 4)
        self.chunks.append(padded)
        self.length += len(padded)
        self.gltf.accessors.append(gl.Accessor(
            bufferView=len(self.gltf.bufferViews) - 1, componentType=_COMPONENT[array.dtype], count=len(array),
            type=_TYPE[rows.shape[1]], min=rows.min(0).tolist() if bounds else None,
            max=rows.max(0).tolist() if bounds else None))
        return len(self.gltf.accessors) - 1

    def finish(self) -> None:
        blob = b''.join(self.chunks)
        self.gltf.buffers = [gl.Buffer(byteLength=len(blob))]
        self.gltf.set_binary_blob(blob)


def quaternions(rotmats: np.ndarray) -> np.ndarray:
    """glTF quaternions ``(n, k, 4)`` as (x, y, z, w) of rotation matrices ``(n, k, 3, 3)``, each joint's
    signs chosen continuous over time (so that linear interpolation between keys takes the short way)."""
    n, k = rotmats.shape[:2]
    wxyz = rotmat_to_quat(torch.from_numpy(np.asarray(rotmats, dtype=np.float64).reshape(-1, 3, 3))).numpy()
    quat = wxyz.reshape(n, k, 4)[..., [1, 2, 3, 0]]
    flips = np.where(np.sum(quat[1:] * quat[:-1], axis=-1) < 0, -1.0, 1.0)
    signs = np.concatenate([np.ones((1, k)), np.cumprod(flips, axis=0)])
    return quat * signs[..., None]


def skin_attributes(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every nonzero skinning weight of ``weights (V, J)`` as glTF joint/weight sets: ``joints (V, 4 s)``
    uint8 and ``weights (V, 4 s)`` float32, largest first, ``s`` the fewest sets of four that hold them."""
    sets = max(1, math.ceil(int((weights > 0).sum(1).max()) / 4))
    order = np.argsort(-weights, axis=1, kind='stable')[:, :4 * sets]
    chosen = np.take_along_axis(weights, order, axis=1)
    return np.where(chosen > 0, order, 0).astype(np.uint8), chosen.astype(np.float32)


def write_glb(path: str | os.PathLike, motions: list[BodyMotion], fps: float, num_frames: int, width: int,
              height: int, focal: float, frame: str = 'yup', cam_R: np.ndarray | None = None) -> Path:
    """Write the people's ``motions`` (one :class:`BodyMotion` each, all in export frame ``frame``) as one
    GLB (module docstring) for a video of ``num_frames`` frames at ``fps``, ``width x height`` pixels, seen
    by a pinhole of focal length ``focal`` pixels. ``cam_R (num_frames, 3, 3)``: the motions are in world
    space and the camera turns with these world-to-camera rotations. Written atomically; returns the path."""
    gltf = gl.GLTF2(scene=0, scenes=[gl.Scene(nodes=[0])], asset=gl.Asset(
        generator='GLoT demo (lib/demo/export/glb.py) with pygltflib', version='2.0',
        extras={'fps': float(fps), 'frame_count': int(num_frames), 'image_size': [int(width), int(height)],
                'focal_length': float(focal), 'export_frame': frame,
                'export_space': 'camera' if cam_R is None else 'world'}))
    binary = _Binary(gltf)
    to_world = np.eye(3)[None] if cam_R is None else np.swapaxes(np.asarray(cam_R, dtype=np.float64), 1, 2)
    camera_quats = quaternions((EXPORT_FRAMES[frame] @ to_world @ FLIP_X)[:, None])[:, 0]
    gltf.cameras.append(gl.Camera(name='camera', type='perspective', perspective=gl.Perspective(
        aspectRatio=width / height, yfov=2.0 * math.atan(height / (2.0 * focal)), znear=0.01)))
    gltf.nodes.append(gl.Node(name='camera', camera=0, rotation=camera_quats[0].tolist()))
    animation = gl.Animation(name='glot')
    all_times = binary.add((np.arange(num_frames) / fps).astype(np.float32), bounds=True)
    if cam_R is not None:
        animation.samplers.append(gl.AnimationSampler(input=all_times, output=binary.add(
            camera_quats.astype(np.float32)), interpolation='LINEAR'))
        animation.channels.append(gl.AnimationChannel(sampler=len(animation.samplers) - 1,
                                                      target=gl.AnimationChannelTarget(node=0, path='rotation')))
    for motion in motions:
        _add_person(gltf, binary, animation, motion, fps, num_frames, all_times)
    gltf.animations.append(animation)
    binary.finish()
    return atomic_write(path, b''.join(gltf.save_to_bytes()))


def _add_person(gltf: gl.GLTF2, binary: _Binary, animation: gl.Animation, motion: BodyMotion, fps: float,
                num_frames: int, all_times: int) -> None:
    """Nodes, skinned mesh and animation channels of one person."""
    person = len(gltf.nodes)
    joint_nodes = [person + 1 + j for j in range(len(motion.parents))]
    gltf.nodes.append(gl.Node(name=f'person_{motion.track_id}', children=[joint_nodes[0]]))
    for j, (name, bone) in enumerate(zip(motion.names, motion.bones)):
        children = [joint_nodes[c] for c, parent in enumerate(motion.parents) if parent == j]
        gltf.nodes.append(gl.Node(name=name, translation=bone.tolist(), children=children))

    verts = motion.rest_verts.astype(np.float32)
    joints, weights = skin_attributes(motion.weights)
    attributes = {'POSITION': binary.add(verts, gl.ARRAY_BUFFER, bounds=True),
                  'NORMAL': binary.add(vertex_normals(motion.rest_verts, motion.faces).astype(np.float32),
                                       gl.ARRAY_BUFFER)}
    for s in range(joints.shape[1] // 4):
        attributes[f'JOINTS_{s}'] = binary.add(joints[:, 4 * s:4 * s + 4], gl.ARRAY_BUFFER)
        attributes[f'WEIGHTS_{s}'] = binary.add(weights[:, 4 * s:4 * s + 4], gl.ARRAY_BUFFER)
    indices = binary.add(motion.faces.reshape(-1).astype(np.uint16 if len(verts) < 65535 else np.uint32),
                         gl.ELEMENT_ARRAY_BUFFER)
    gltf.materials.append(gl.Material(name=f'person_{motion.track_id}', pbrMetallicRoughness=gl.PbrMetallicRoughness(
        baseColorFactor=[*track_color(motion.track_id), 1.0], metallicFactor=0.0, roughnessFactor=0.8)))
    gltf.meshes.append(gl.Mesh(name=f'person_{motion.track_id}_body', primitives=[gl.Primitive(
        attributes=gl.Attributes(**attributes), indices=indices, material=len(gltf.materials) - 1)]))
    inverse_bind = np.tile(np.eye(4), (len(joint_nodes), 1, 1))
    inverse_bind[:, :3, 3] = -motion.rest_joints
    gltf.skins.append(gl.Skin(name=f'person_{motion.track_id}', joints=joint_nodes, skeleton=joint_nodes[0],
                              inverseBindMatrices=binary.add(inverse_bind.transpose(0, 2, 1).astype(np.float32))))
    gltf.nodes.append(gl.Node(name=f'person_{motion.track_id}_body', mesh=len(gltf.meshes) - 1,
                              skin=len(gltf.skins) - 1))
    gltf.scenes[0].nodes += [person, len(gltf.nodes) - 1]

    times = binary.add((motion.frame_ids / fps).astype(np.float32), bounds=True)
    visible = np.zeros((num_frames, 3), dtype=np.float32)
    visible[motion.frame_ids] = 1.0
    tracks = [(person, 'scale', all_times, visible, 'STEP'),
              (joint_nodes[0], 'translation', times, motion.root_position.astype(np.float32), 'LINEAR')]
    quats = quaternions(motion.rotations).astype(np.float32)
    tracks += [(node, 'rotation', times, quats[:, j], 'LINEAR') for j, node in enumerate(joint_nodes)]
    for node, path, inputs, values, interpolation in tracks:
        animation.samplers.append(gl.AnimationSampler(input=inputs, output=binary.add(values),
                                                      interpolation=interpolation))
        animation.channels.append(gl.AnimationChannel(sampler=len(animation.samplers) - 1,
                                                      target=gl.AnimationChannelTarget(node=node, path=path)))

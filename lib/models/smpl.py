"""SMPL body model with the 49 SPIN joints, loaded from the released pickles without chumpy.

``SMPL`` is a thin subclass of ``smplx.SMPLLayer``: it takes rotation matrices, has no per-batch parameters,
and adds the ``J_regressor_extra`` buffer (9 x 6890) of the official model. Its ``joints`` output is in
``lib.utils.joints.SPIN_49`` order.

Accepted model files (``SMPL_{NEUTRAL,MALE,FEMALE}.pkl`` in one folder, or a path to one file):
- SMPL v1.0.0 (``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl``, 10 betas) and v1.1.0 (300 betas; the first
  10 are used, as the official models were trained with 10);
- pickles that reference chumpy objects (the original releases) and plain-numpy ones; chumpy need not be
  installed.
"""
from __future__ import annotations

import contextlib
import io
import pickle
from pathlib import Path

import numpy as np
import torch
from smplx import SMPLLayer
from smplx.lbs import vertices2joints
from smplx.utils import SMPLOutput, Struct

from lib.core.checks import GENDERS
from lib.core.config import resolve_path
from lib.core.errors import UserError
from lib.core.files import BASE_DATA_SOURCE, SMPL_SOURCES, smpl_model_path
from lib.utils.joints import NUM_EXTRA_JOINTS, SMPL_54_TO_SPIN_49

NUM_BETAS = 10
NUM_VERTICES = 6890


class _ChumpyStub:
    """Stands in for any chumpy class while unpickling; keeps the pickled state (its ``x`` is the array)."""

    def __init__(self, *args, **kwargs):
        self.state = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {'x': state}


class _ChumpyFreeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == 'chumpy' or module.startswith('chumpy.'):
            return _ChumpyStub
        return super().find_class(module, name)


def _to_numpy(value):
    if isinstance(value, _ChumpyStub):
        if 'x' not in value.state:
            raise UserError("SMPL pickle holds a chumpy object without array data ('x'); re-export the model "
                            "file with plain numpy arrays")
        return np.asarray(value.state['x'])
    return value


def smpl_model_file(model_path: str | Path, gender: str = 'neutral') -> Path:
    """The pkl for ``gender`` inside folder ``model_path`` (or ``model_path`` itself if it is a file).

    Raises:
        UserError: the file does not exist; the message says where to download it and how to name it.
    """
    if gender not in GENDERS:
        raise UserError(f"unknown SMPL gender '{gender}'; use one of {', '.join(GENDERS)}")
    path = smpl_model_path(model_path, gender)
    if not path.is_file():
        raise UserError(f"SMPL model file not found: {path}. It comes from {SMPL_SOURCES[gender]} to "
                        f"{path.name}; put it in {path.parent}/")
    return path


def load_smpl_data(path: str | Path) -> dict:
    """Read an SMPL pkl into a dict of numpy arrays (chumpy objects and scipy sparse matrices converted)."""
    path = Path(path)
    try:
        with open(path, 'rb') as f:
            data = _ChumpyFreeUnpickler(io.BufferedReader(f), encoding='latin1').load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, ImportError) as err:
        raise UserError(f"cannot read SMPL model {path}: {err} (is it a SMPL .pkl file?)") from None
    if not isinstance(data, dict) or 'v_template' not in data or 'shapedirs' not in data:
        raise UserError(f"{path} is not a SMPL model pickle (no v_template/shapedirs)")
    out = {key: _to_numpy(value) for key, value in data.items()}
    if hasattr(out.get('J_regressor'), 'toarray'):
        out['J_regressor'] = out['J_regressor'].toarray()
    return out


class SMPL(SMPLLayer):
    """SMPL with the 49 SPIN joints.

    Args:
        model_path: folder holding ``SMPL_{GENDER}.pkl``, or the pkl itself.
        gender: 'neutral', 'male' or 'female'.
        j_regressor_extra: ``J_regressor_extra.npy`` (9 x 6890), rows in the order of
            ``lib.utils.joints.SMPL_54_TO_SPIN_49``'s raw joints 45-53.
        num_betas: shape coefficients used (10 for all GLoT weights).
    """

    def __init__(self, model_path: str | Path, gender: str = 'neutral', j_regressor_extra: str | Path = '',
                 num_betas: int = NUM_BETAS, dtype: torch.dtype = torch.float32):
        model_file = smpl_model_file(model_path, gender)
        data = load_smpl_data(model_file)
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a 10-betas warning on every build
            super().__init__(model_path=str(model_file), data_struct=Struct(**data), gender=gender,
                             num_betas=num_betas, dtype=dtype)
        extra = _load_regressor(j_regressor_extra, 'J_regressor_extra.npy', NUM_EXTRA_JOINTS)
        self.register_buffer('J_regressor_extra', torch.tensor(extra, dtype=dtype))
        self.register_buffer('joint_map', torch.tensor(SMPL_54_TO_SPIN_49, dtype=torch.long), persistent=False)

    def forward(self, betas: torch.Tensor, body_pose: torch.Tensor, global_orient: torch.Tensor,
                transl: torch.Tensor | None = None, **kwargs) -> SMPLOutput:
        """Pose the body.

        Args:
            betas: ``(B, 10)`` shape coefficients.
            body_pose: ``(B, 23, 3, 3)`` (or ``(B, 207)``) rotation matrices of joints 1-23.
            global_orient: ``(B, 1, 3, 3)`` (or ``(B, 9)``) root rotation.
            transl: optional ``(B, 3)`` translation in metres.
        Returns:
            ``SMPLOutput`` with ``vertices (B, 6890, 3)`` and ``joints (B, 49, 3)`` in metres (SPIN-49 order).
        """
        out = super().forward(betas=betas, body_pose=body_pose, global_orient=global_orient, transl=transl,
                              pose2rot=False, **kwargs)
        extra = vertices2joints(self.J_regressor_extra, out.vertices)
        joints = torch.cat([out.joints, extra], dim=1)[:, self.joint_map]
        return SMPLOutput(vertices=out.vertices, joints=joints, betas=betas, global_orient=global_orient,
                          body_pose=body_pose, full_pose=out.full_pose, transl=transl)


def _load_regressor(path: str | Path, name: str, rows: int) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{name} not found at {path}. It comes from {BASE_DATA_SOURCE}")
    arr = np.load(path)
    if arr.shape != (rows, NUM_VERTICES):
        raise UserError(f"{path} has shape {arr.shape}, expected ({rows}, {NUM_VERTICES})")
    return arr.astype(np.float32)


def build_smpl(cfg, gender: str = 'neutral') -> SMPL:
    """The SMPL layer of ``cfg`` (``SMPL.MODEL_DIR``, ``SMPL.J_REGRESSOR_EXTRA``), on the CPU."""
    return SMPL(resolve_path(cfg, cfg.SMPL.MODEL_DIR), gender=gender,
                j_regressor_extra=resolve_path(cfg, cfg.SMPL.J_REGRESSOR_EXTRA))


def load_h36m_regressor(cfg) -> torch.Tensor:
    """``J_regressor_h36m.npy`` of ``cfg`` as a float32 tensor ``(17, 6890)`` (rows in ``H36M_17`` order)."""
    return torch.from_numpy(_load_regressor(resolve_path(cfg, cfg.SMPL.J_REGRESSOR_H36M),
                                            'J_regressor_h36m.npy', 17))


def load_mean_params(cfg) -> dict[str, torch.Tensor]:
    """SPIN mean parameters: ``pose (144,)`` in 6D, ``shape (10,)``, ``cam (3,)`` float32 tensors."""
    path = resolve_path(cfg, cfg.SMPL.MEAN_PARAMS)
    if not path.is_file():
        raise UserError(f"SMPL mean parameters not found at {path}. smpl_mean_params.npz comes from "
                        f"{BASE_DATA_SOURCE}")
    with np.load(path) as npz:
        missing = {'pose', 'shape', 'cam'} - set(npz.files)
        if missing:
            raise UserError(f"{path} lacks key(s) {', '.join(sorted(missing))}; expected pose, shape, cam")
        params = {k: torch.from_numpy(np.asarray(npz[k], dtype=np.float32).reshape(-1)) for k in ('pose', 'shape', 'cam')}
    if params['pose'].numel() != 144 or params['shape'].numel() != 10 or params['cam'].numel() != 3:
        raise UserError(f"{path} has unexpected sizes (pose 144, shape 10, cam 3 expected)")
    return params

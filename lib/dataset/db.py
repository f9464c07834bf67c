"""Readers for the released preprocessed databases, in their original formats.

- ``*_db.pt`` (3DPW, MPI-INF-3DHP, Human3.6M): a joblib-pickled dict of numpy arrays, one row per frame
  (TCMR's release; our ``scripts/preprocess_*.py`` write the same format).
- ``insta_train_db.h5`` (InstaVariety, from VIBE): an HDF5 file with the same per-frame layout. It holds
  about 18 GB of features, so :class:`H5Database` keeps the file on disk and reads rows on demand.

Usage::

    db = read_db(cfg, 'ThreeDPW', 'TRAIN')      # dict of arrays, checked; or an H5Database for Insta
    db = load_db(path, 'MPII3D', 'TEST')          # the same for an explicit file

Checks (each failure is a :class:`~lib.core.errors.UserError` with one line naming the file):

- the file exists (else: which release it comes from and where it goes under ``DATA_ROOT``);
- the keys the code reads for that dataset and split are present (:data:`REQUIRED_KEYS`);
- every per-frame array has as many rows as ``vid_name``, and the trailing shapes listed in
  :data:`REQUIRED_KEYS` / :data:`OPTIONAL_KEYS` match (e.g. ``features`` ``(N, 2048)``).

Database keys (N frames): ``vid_name`` (N,) str (bytes in the h5),
``frame_id`` (N,), ``img_name`` (N,) str, ``joints2D`` (N, J, 3) pixels + confidence (J = 14 "common" for
3DPW, 49 SPIN for MPI-INF-3DHP / Human3.6M, 25 "insta" for InstaVariety), ``joints3D`` (N, 49, 3) metres
(3DPW val/test: (N, 14, 3)), ``pose`` (N, 72) axis-angle, ``shape`` (N, 10), ``bbox`` (N, 4)
``(cx, cy, w, h)`` pixels, ``features`` (N, 2048) float32, ``valid`` (N,) (3DPW camera-pose validity),
``valid_i`` (N, 1) (MPI-INF-3DHP test frame validity).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import h5py
import joblib
import numpy as np

from lib.core.config import db_path
from lib.core.errors import UserError
from lib.core.files import DB_SOURCES, TCMR_RELEASE

SPLITS = ('TRAIN', 'VAL', 'TEST')


# Trailing shape (after the frame axis) of each key; a tuple of shapes means any of them.
_ROW = ()
_J2D_COMMON, _J2D_SPIN, _J2D_INSTA = (14, 3), (49, 3), (25, 3)
_J3D_SPIN, _J3D_COMMON = (49, 3), (14, 3)
_FEATURES = (2048,)

# Keys the datasets, the trainer's validation and the evaluator read, per dataset and split.
REQUIRED_KEYS: dict[tuple[str, str], dict[str, tuple]] = {
    ('ThreeDPW', 'TRAIN'): {'vid_name': _ROW, 'joints2D': _J2D_COMMON, 'joints3D': _J3D_SPIN,
                            'pose': (72,), 'shape': (10,), 'bbox': (4,), 'features': _FEATURES},
    ('ThreeDPW', 'VAL'): {'vid_name': _ROW, 'joints3D': _J3D_COMMON, 'pose': (72,), 'shape': (10,),
                          'features': _FEATURES},
    ('ThreeDPW', 'TEST'): {'vid_name': _ROW, 'joints3D': _J3D_COMMON, 'pose': (72,), 'shape': (10,),
                           'features': _FEATURES},
    ('MPII3D', 'TRAIN'): {'vid_name': _ROW, 'joints2D': _J2D_SPIN, 'joints3D': _J3D_SPIN, 'bbox': (4,),
                          'features': _FEATURES},
    ('MPII3D', 'VAL'): {'vid_name': _ROW, 'joints3D': _J3D_SPIN, 'valid_i': ((1,), ()), 'features': _FEATURES},
    ('MPII3D', 'TEST'): {'vid_name': _ROW, 'joints3D': _J3D_SPIN, 'valid_i': ((1,), ()), 'features': _FEATURES},
    ('Human36M', 'TRAIN'): {'vid_name': _ROW, 'joints2D': _J2D_SPIN, 'joints3D': _J3D_SPIN, 'pose': (72,),
                            'shape': (10,), 'bbox': (4,), 'features': _FEATURES},
    ('Human36M', 'VAL'): {'vid_name': _ROW, 'joints3D': _J3D_SPIN, 'features': _FEATURES},
    ('Human36M', 'TEST'): {'vid_name': _ROW, 'joints3D': _J3D_SPIN, 'features': _FEATURES},
    ('Insta', 'TRAIN'): {'vid_name': _ROW, 'joints2D': _J2D_INSTA, 'features': _FEATURES},
}
# Keys checked only when present (the released files carry them; rendering and debugging use them).
OPTIONAL_KEYS: dict[str, tuple] = {
    'frame_id': _ROW, 'img_name': _ROW, 'valid': ((), (1,)), 'valid_i': ((1,), ()), 'bbox': (4,),
    'pose': (72,), 'shape': (10,), 'features': _FEATURES,
}


def missing_file_error(path: Path, dataset: str) -> UserError:
    """The one-line error for a database file that is not there."""
    source = DB_SOURCES.get(dataset, TCMR_RELEASE)
    return UserError(f"database file not found: {path}. {path.name} comes from {source}; put it in "
                     f"{path.parent}/ (DATA_ROOT/{_db_dir_hint(path)})")


def _db_dir_hint(path: Path) -> str:
    return path.parent.name or 'preprocessed_data'


def _check_split(dataset: str, split: str) -> dict[str, tuple]:
    if (dataset, split) not in REQUIRED_KEYS:
        known = ', '.join(f'{d}/{s}' for d, s in REQUIRED_KEYS)
        raise UserError(f"no database layout for dataset '{dataset}' split '{split}'; known: {known}")
    return REQUIRED_KEYS[(dataset, split)]


def _shape_ok(trailing: tuple[int, ...], expected) -> bool:
    options = expected if expected and isinstance(expected[0], tuple) else (expected,)
    return trailing in options


def _describe(expected) -> str:
    options = expected if expected and isinstance(expected[0], tuple) else (expected,)
    return ' or '.join('(N' + ''.join(f', {d}' for d in opt) + ')' for opt in options)


def validate_db(shapes: Mapping[str, tuple[int, ...]], path: Path, dataset: str, split: str) -> int:
    """Check key presence, row counts and trailing shapes; returns the number of frames N.

    Args:
        shapes: full shape of every array in the database, by key.
    Raises:
        UserError: naming the file and the offending key.
    """
    required = _check_split(dataset, split)
    for key in required:
        if key not in shapes:
            raise UserError(f"{path}: required key '{key}' is missing ({dataset} {split.lower()} databases need "
                            f"{', '.join(required)})")
    n = shapes['vid_name'][0] if shapes['vid_name'] else 0
    if n == 0:
        raise UserError(f"{path}: key 'vid_name' is empty (the database has no frames)")
    for key, shape in shapes.items():
        if not shape:
            continue
        if shape[0] != n:
            raise UserError(f"{path}: key '{key}' has {shape[0]} rows but 'vid_name' has {n} (inconsistent lengths)")
        expected = required.get(key, OPTIONAL_KEYS.get(key))
        if expected is not None and not _shape_ok(tuple(shape[1:]), expected):
            raise UserError(f"{path}: key '{key}' has shape {tuple(shape)}, expected {_describe(expected)}")
    return n


def load_db(path: str | os.PathLike, dataset: str, split: str) -> dict[str, np.ndarray]:
    """Read and check a joblib ``*_db.pt`` database.

    Returns:
        dict of numpy arrays (lists in the file become arrays).
    Raises:
        UserError: missing file, unreadable file, missing key, inconsistent lengths or shapes.
    """
    path = Path(path)
    _check_split(dataset, split)
    if not path.is_file():
        raise missing_file_error(path, dataset)
    try:
        data = joblib.load(path)
    except Exception as err:  # joblib/pickle raise many types for a damaged or foreign file
        raise UserError(f"cannot read {path}: {type(err).__name__}: {err} (expected a joblib *_db.pt dict)") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} holds a {type(data).__name__}, expected a dict of per-frame arrays")
    db = {key: value if isinstance(value, np.ndarray) else np.asarray(value) for key, value in data.items()}
    validate_db({key: value.shape for key, value in db.items()}, path, dataset, split)
    check_finite(db, path)
    return db


def check_finite(db: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Refuse NaN / inf in the floating-point arrays of ``db`` (features, joints, pose, shape, boxes) with
    one line naming the file, the key, the row and its sequence and frame."""
    for key, value in db.items():
        if value.dtype.kind != 'f' or value.size == 0:
            continue
        bad = ~np.isfinite(value.reshape(len(value), -1)).all(axis=1)
        if bad.any():
            row = int(np.argmax(bad))
            where = f"row {row}"
            if 'vid_name' in db:
                name = db['vid_name'][row]
                where += f" (sequence {name.decode() if isinstance(name, bytes) else name}"
                where += f", frame {db['frame_id'][row]})" if 'frame_id' in db else ')'
            raise UserError(f"{path}: '{key}' holds NaN or infinite values at {where} and {int(bad.sum()) - 1} "
                            "other row(s); fix or regenerate the database")


class H5Database:
    """A read-only HDF5 database (VIBE's ``insta_train_db.h5`` layout), opened lazily in each process.

    ``db['vid_name']`` etc. return the h5py dataset (slice it to read rows); :meth:`read` reads a row range.
    The handle is reopened after a fork (DataLoader workers) and is not pickled.
    """

    def __init__(self, path: str | os.PathLike, dataset: str = 'Insta', split: str = 'TRAIN'):
        self.path = Path(path)
        _check_split(dataset, split)
        if not self.path.is_file():
            raise missing_file_error(self.path, dataset)
        try:
            with h5py.File(self.path, 'r') as f:
                shapes = {key: f[key].shape for key in f.keys() if isinstance(f[key], h5py.Dataset)}
        except OSError as err:
            raise UserError(f"cannot read {self.path}: {err} (expected an HDF5 file)") from None
        self.shapes = shapes
        self.num_frames = validate_db(shapes, self.path, dataset, split)
        self._file = None
        self._pid = None
        self._datasets = {}

    def __len__(self) -> int:
        return self.num_frames

    def keys(self):
        return self.shapes.keys()

    def __contains__(self, key: str) -> bool:
        return key in self.shapes

    def _handle(self):
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, 'r')
            self._pid = os.getpid()
            self._datasets = {}
        return self._file

    def __getitem__(self, key: str):
        """The h5py dataset ``key`` (cached per process: looking it up costs more than a small read)."""
        handle = self._handle()
        if key not in self._datasets:
            self._datasets[key] = handle[key]
        return self._datasets[key]

    def read(self, key: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start .. stop - 1`` of ``key`` as a numpy array."""
        return self[key][start:stop]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_file=None, _pid=None, _datasets={})
        return state


def read_db(cfg, dataset: str, split: str) -> dict[str, np.ndarray] | H5Database:
    """The checked database of ``dataset`` and ``split`` at its ``DATASET.FILES`` path under the data root.

    ``.h5`` files give an :class:`H5Database`, everything else a dict (see :func:`load_db`).
    """
    path = db_path(cfg, dataset, split)
    if path.suffix in ('.h5', '.hdf5'):
        return H5Database(path, dataset, split)
    return load_db(path, dataset, split)

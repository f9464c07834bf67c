"""The input files of the entry points: where each one goes, where it comes from, and the up-front check.

``train.py``, ``evaluate.py`` and ``demo.py`` list every file they will read as :class:`NeededFile` records
(built by the functions below from the config) and call :func:`check_files` before building anything; it
returns the resolved paths, which the builders then take (nothing is resolved twice). All missing files are
reported at once, as one ``error:`` line followed by one indented line per file::

    error: 2 files needed to evaluate are missing (nothing was run; paths in a config are under DATA_ROOT, here
    /home/me/data):
      GLoT weights (--checkpoint PATH, or TRAIN.PRETRAINED): /home/me/data/pretrained_models/...  <- from ...
      SMPL neutral model (SMPL.MODEL_DIR): /home/me/data/base_data/SMPL_NEUTRAL.pkl  <- from SMPLify (...)

(the first line is one line on the console).

The source texts here are the only ones: the loaders' own one-file errors (``lib.models.smpl``,
``lib.models.spin``, ``lib.dataset.db``) use them too.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from lib.core.config import data_root, db_path, other_reading, resolve_path
from lib.core.errors import UserError

GLOT_RELEASE = "the GLoT release's Google Drive folder 1PXWeHeo1e5gyXqLpEhIpatlNLd-8lpmc"
BASE_DATA_SOURCE = f"base_data/ in {GLOT_RELEASE}"
SPIN_SOURCE = f"{BASE_DATA_SOURCE} (SPIN's model_checkpoint.pt, from github.com/nkolot/SPIN fetch_data.sh)"
GLOT_WEIGHTS_SOURCE = f"pretrained_models/ in {GLOT_RELEASE}, or a checkpoint of your own training"
SMPL_SOURCES = {
    'neutral': "SMPLify (https://smplify.is.tue.mpg.de, registration): basicModel_neutral_lbs_10_207_0_v1.0.0.pkl, "
               "renamed",
    'male': "SMPL (https://smpl.is.tue.mpg.de, registration): basicmodel_m_lbs_10_207_0_v1.0.0.pkl, renamed",
    'female': "SMPL (https://smpl.is.tue.mpg.de, registration): basicModel_f_lbs_10_207_0_v1.0.0.pkl, renamed",
}
TCMR_RELEASE = "TCMR's preprocessed data (Google Drive folder 1h0FxBGLqsxNvUL0J43WkTxp7WgYIBLy-)"
VIBE_INSTA_RELEASE = ("VIBE's InstaVariety release (insta_train_db.h5, about 18 GB, md5 "
                      "8ec335d1d48bd54687ad5c9a6eeb2999; see VIBE's docs/train.md)")
DB_SOURCES = {
    'ThreeDPW': f"{TCMR_RELEASE}, or run scripts/preprocess_3dpw.py on the raw 3DPW release",
    'MPII3D': f"{TCMR_RELEASE}, or run scripts/preprocess_mpii3d.py on the raw MPI-INF-3DHP release",
    'Human36M': f"{TCMR_RELEASE}, or run scripts/preprocess_h36m.py on the raw Human3.6M release",
    'Insta': VIBE_INSTA_RELEASE,
}


@dataclass(frozen=True)
class NeededFile:
    """One input file: ``what`` it is (with the key or option that sets it), ``path`` where it must be (None:
    not set) and ``source``, where to get it."""

    what: str
    path: Path | None
    source: str

    def present(self) -> bool:
        return self.path is not None and self.path.is_file()


class MissingFilesError(UserError):
    """Input files are missing; the message lists all of them, one indented line each."""


def smpl_model_path(model_path: str | os.PathLike, gender: str) -> Path:
    """The pkl of ``gender`` in folder ``model_path`` (``SMPL_<GENDER>.pkl``), or ``model_path`` if it is a pkl."""
    path = Path(model_path)
    return path if path.suffix == '.pkl' else path / f'SMPL_{gender.upper()}.pkl'


def body_model_files(cfg, genders: Iterable[str] = ('neutral',), h36m_regressor: bool = False) -> list[NeededFile]:
    """The SMPL pkls of ``genders``, the SPIN mean parameters, ``J_regressor_extra`` and (``h36m_regressor``,
    for the 14 evaluation joints) ``J_regressor_h36m``."""
    model_dir = resolve_path(cfg, cfg.SMPL.MODEL_DIR)
    files = [NeededFile(f'SMPL {g} model (SMPL.MODEL_DIR)', smpl_model_path(model_dir, g), SMPL_SOURCES[g])
             for g in genders]
    files += [NeededFile('SMPL mean parameters (SMPL.MEAN_PARAMS)', resolve_path(cfg, cfg.SMPL.MEAN_PARAMS),
                         BASE_DATA_SOURCE),
              NeededFile('J_regressor_extra (SMPL.J_REGRESSOR_EXTRA)', resolve_path(cfg, cfg.SMPL.J_REGRESSOR_EXTRA),
                         BASE_DATA_SOURCE)]
    if h36m_regressor:
        files.append(NeededFile('J_regressor_h36m (SMPL.J_REGRESSOR_H36M)',
                                resolve_path(cfg, cfg.SMPL.J_REGRESSOR_H36M), BASE_DATA_SOURCE))
    return files


def spin_checkpoint_file(cfg) -> NeededFile:
    """The SPIN checkpoint ``TRAIN.PRETRAINED_REGRESSOR``."""
    return NeededFile('SPIN checkpoint (TRAIN.PRETRAINED_REGRESSOR)', resolve_path(cfg, cfg.TRAIN.PRETRAINED_REGRESSOR),
                      SPIN_SOURCE)


def glot_weights_file(cfg, checkpoint: str | os.PathLike | None = None) -> NeededFile:
    """The GLoT checkpoint: ``checkpoint`` (a path given in code or as an option: relative to the current
    folder), else ``TRAIN.PRETRAINED`` (under ``DATA_ROOT``); path None when neither is set."""
    if checkpoint:
        path = Path(checkpoint).expanduser().absolute()
    else:
        path = resolve_path(cfg, cfg.TRAIN.PRETRAINED) if cfg.TRAIN.PRETRAINED else None
    return NeededFile('GLoT weights (--checkpoint PATH, or TRAIN.PRETRAINED)', path, GLOT_WEIGHTS_SOURCE)


def database_file(cfg, dataset: str, split: str) -> NeededFile:
    """The preprocessed database of ``dataset`` (a ``DATASET.FILES`` name) and ``split``."""
    return NeededFile(f'{dataset} {split.lower()} database (DATASET.FILES.{dataset}.{split})',
                      db_path(cfg, dataset, split), DB_SOURCES.get(dataset, TCMR_RELEASE))


def check_files(cfg, files: Iterable[NeededFile], task: str) -> list[Path]:
    """The paths of ``files``, in order, once every one is there; else raise one :class:`MissingFilesError`
    naming every file that is not there (or not set).

    ``task`` completes "files needed to ...", e.g. ``'evaluate'``.
    """
    files = list(files)
    missing = [f for f in files if not f.present()]
    if not missing:
        return [f.path for f in files]
    lines = [f"{len(missing)} file{'s' if len(missing) > 1 else ''} needed to {task} "
             f"{'are' if len(missing) > 1 else 'is'} missing (nothing was run; paths in a config are under "
             f"DATA_ROOT, here {data_root(cfg).absolute()}):"]
    lines += [f"  {f.what}: {'not set' if f.path is None else f.path}  <- {_where_else(cfg, f.path, f.source)}"
              for f in missing]
    raise MissingFilesError('\n'.join(lines))


def _where_else(cfg, path: Path | None, source: str) -> str:
    """``from <source>``, or, when the file exists under the other reading of the config path rule, both places."""
    other = None if path is None else other_reading(cfg, path)
    if other is None:
        return f"from {source}"
    return (f"not there, but a file exists at {other}: in a config, a relative path starting with ./ or ../ is "
            f"relative to the current folder, any other one is under DATA_ROOT; write the path to match")

"""``evaluate.py``: one test set evaluated from a config and a checkpoint, every input checked before the
forward pass, the results printed as a table and written as files (:mod:`lib.eval.report`)."""
from __future__ import annotations

import logging
import os
import pickle
import time
from pathlib import Path

import numpy as np

from lib.core.config import resolve_device, resolve_path
from lib.core.errors import UserError
from lib.core.files import NeededFile, body_model_files, check_files, database_file, glot_weights_file
from lib.core.io import prepare_output_dir
from lib.core.logs import log_file, log_run, write_run_config
from lib.dataset.db import load_db
from lib.dataset.eval_sequences import as_str
from lib.eval.protocol import EVAL_SETS, EvalResult, EvalSetSpec, Evaluator
from lib.eval.render import dataset_image_paths, render_predictions
from lib.eval.report import format_table, write_results
from lib.models import build_model, load_checkpoint
from lib.models.smpl import GENDERS, build_smpl, load_h36m_regressor

logger = logging.getLogger(__name__)


def eval_set_spec(dataset: str) -> EvalSetSpec:
    """The rules of test set ``dataset``; UserError for an unknown name."""
    if dataset not in EVAL_SETS:
        raise UserError(f"unknown dataset '{dataset}'; use one of {', '.join(EVAL_SETS)}")
    return EVAL_SETS[dataset]


def required_files(cfg, spec: EvalSetSpec, gendered: bool) -> list[NeededFile]:
    """Every file an evaluation reads: the GLoT weights, the test database and the SMPL assets (with the
    gendered models for ``EVAL.GENDERED_MPVPE``, with ``J_regressor_h36m`` for the 14 LSP joints)."""
    genders = GENDERS if gendered else ('neutral',)
    return [glot_weights_file(cfg), database_file(cfg, spec.files_key, 'TEST'),
            *body_model_files(cfg, genders, h36m_regressor=spec.lsp_joints)]


def default_output_dir(cfg, dataset: str) -> Path:
    """``OUTPUT_DIR/EXP_NAME/eval_<dataset>``."""
    return Path(cfg.OUTPUT_DIR) / cfg.EXP_NAME / f'eval_{dataset}'


def run_evaluation(cfg, dataset: str, output_dir: str | os.PathLike | None = None, render: bool = False,
                   cfg_file: str | None = None, progress: bool = True) -> EvalResult:
    """Evaluate ``cfg``'s checkpoint (``TRAIN.PRETRAINED``) on test set ``dataset``; print the table and write
    the result files (:func:`write_results`) into ``output_dir``.

    Every input (dataset name, checkpoint, database, SMPL and regressor files, renderer) is checked before the
    forward pass; a bad one raises UserError and no result file is written.
    """
    spec = eval_set_spec(dataset)
    protocols = list(cfg.EVAL.PROTOCOLS)
    gendered = bool(cfg.EVAL.GENDERED_MPVPE) and spec.mpvpe
    ckpt, db_file, *_ = check_files(cfg, required_files(cfg, spec, gendered), 'evaluate')
    device = resolve_device(cfg.DEVICE)
    model = build_model(cfg)
    load_checkpoint(model, ckpt, cfg)
    model.to(device).eval()
    # the model's body model is the neutral SMPL from the user's files, like the official GT model
    smpl = model.smpl if spec.mpvpe else None
    gendered_smpl = {g: build_smpl(cfg, g) for g in ('male', 'female')} if gendered else None
    j_regressor = load_h36m_regressor(cfg) if spec.lsp_joints else None
    db = load_db(db_file, spec.files_key, 'TEST')
    genders = threedpw_genders(cfg, db['vid_name']) if gendered else None
    if render:
        image_paths = dataset_image_paths(cfg, dataset, db)

    out_dir = prepare_output_dir(Path(output_dir) if output_dir else default_output_dir(cfg, dataset))
    with log_file(out_dir):
        log_run(cfg, device, out_dir)
        write_run_config(out_dir, cfg)
        start = time.perf_counter()
        evaluator = Evaluator(model, device, j_regressor=j_regressor, smpl=smpl, gendered_smpl=gendered_smpl,
                              batch_size=cfg.EVAL.BATCH_SIZE, protocols=protocols, seqlen=cfg.DATASET.SEQLEN,
                              progress=progress)
        result = evaluator.evaluate(dataset, db, genders=genders, keep_predictions=render)
        seconds = time.perf_counter() - start
        info = {'dataset': dataset, 'checkpoint': str(ckpt), 'config': cfg_file, 'database': str(db_file),
                'device': str(device), 'frames': result.num_frames, 'sequences': result.num_sequences,
                'protocols': protocols, 'seconds': round(seconds, 3)}
        write_results(result, out_dir, info)
        table = format_table(result)
        print(table)
        logger.info('results:\n%s', table, extra={'file_only': True})
        logger.info('results written to %s', out_dir)
        if render:
            videos = render_predictions(cfg, result, image_paths, db, model.smpl, out_dir / 'render',
                                        progress=progress)
            logger.info('%d rendered videos in %s', len(videos), out_dir / 'render')
    return result


def threedpw_genders(cfg, vid_names: np.ndarray) -> np.ndarray:
    """``(N,)`` 'm'/'f' of every DB row, from the raw 3DPW ``sequenceFiles/*/<sequence>.pkl`` ``genders``.

    ``vid_name`` is ``<sequence>_<person id>``. Raises UserError if a sequence file is missing.
    """
    root = resolve_path(cfg, cfg.DATASET.THREEDPW_DIR) / 'sequenceFiles'
    names = np.asarray(vid_names)
    unique, inverse = np.unique(names, return_inverse=True)
    cache, per_name = {}, []
    for name in (as_str(n) for n in unique):
        seq, _, person = name.rpartition('_')
        if seq not in cache:
            candidates = [root / split / f'{seq}.pkl' for split in ('test', 'validation', 'train')]
            found = next((p for p in candidates if p.is_file()), None)
            if found is None:
                raise UserError(f"EVAL.GENDERED_MPVPE needs the raw 3DPW sequence files: {candidates[0]} not "
                                f"found (download 3DPW and set DATASET.THREEDPW_DIR)")
            with open(found, 'rb') as f:
                cache[seq] = [str(g)[:1].lower() for g in pickle.load(f, encoding='latin1')['genders']]
        per_name.append(cache[seq][int(person)])
    return np.asarray(per_name)[inverse.reshape(-1)]

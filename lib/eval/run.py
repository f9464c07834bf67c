"""``evaluate.py``: one test set evaluated from a config and a checkpoint, every input checked before the
forward pass, the results printed as a table and written as files (:mod:`lib.eval.report`)."""
from __future__ import annotations

import logging
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.core.config import resolve_device, resolve_path
from lib.core.errors import UserError
from lib.core.files import NeededFile, body_model_files, check_files, database_file, glot_weights_file
from lib.core.io import prepare_output_dir, probe_output_dir
from lib.core.logs import log_file, log_run, write_run_config
from lib.dataset.db import load_db
from lib.dataset.eval_sequences import as_str
from lib.eval.plots import PLOT_DIR, write_accel_plots
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


@dataclass(frozen=True)
class EvalOptions:
    """The released evaluate.py's options.

    Attributes:
        seq: only sequences whose name contains this text ('' = all).
        slerp_filter: smooth the predicted rotations (MEVA's slerp filter, :mod:`lib.eval.smoothing`).
        plot: write the per-sequence acceleration-error plots (:mod:`lib.eval.plots`).
        render: draw the meshes over the dataset frames; render_plain: on a black background (implies render).
        frame: first frame number rendered.
    """

    seq: str = ''
    slerp_filter: bool = False
    plot: bool = False
    render: bool = False
    render_plain: bool = False
    frame: int = 0


def run_evaluation(cfg, dataset: str, output_dir: str | os.PathLike | None = None, render: bool = False,
                   cfg_file: str | None = None, progress: bool = True,
                   options: EvalOptions = EvalOptions()) -> EvalResult:
    """Evaluate ``cfg``'s checkpoint (``TRAIN.PRETRAINED``) on test set ``dataset``; print the table and write
    the result files (:func:`write_results`) into ``output_dir``.

    The output folder is probed first (:func:`lib.core.io.probe_output_dir`), then every input (dataset name,
    checkpoint, database, SMPL and regressor files, renderer) is checked before the forward pass; a bad one
    raises UserError and no result file is written. ``render`` is the same as ``options.render``.
    """
    render = render or options.render or options.render_plain
    spec = eval_set_spec(dataset)
    protocols = list(cfg.EVAL.PROTOCOLS)
    gendered = bool(cfg.EVAL.GENDERED_MPVPE) and spec.mpvpe
    out_dir = Path(output_dir) if output_dir else default_output_dir(cfg, dataset)
    probe_output_dir(out_dir)    # an output folder that cannot be written fails first, creating nothing
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

    prepare_output_dir(out_dir)
    with log_file(out_dir):
        log_run(cfg, device, out_dir)
        write_run_config(out_dir, cfg)
        start = time.perf_counter()
        evaluator = Evaluator(model, device, j_regressor=j_regressor, smpl=smpl, gendered_smpl=gendered_smpl,
                              batch_size=cfg.EVAL.BATCH_SIZE, protocols=protocols, seqlen=cfg.DATASET.SEQLEN,
                              progress=progress, filter_smpl=model.smpl if options.slerp_filter else None)
        result = evaluator.evaluate(dataset, db, genders=genders, keep_predictions=render, sequences=options.seq)
        seconds = time.perf_counter() - start
        info = {'dataset': dataset, 'checkpoint': str(ckpt), 'config': cfg_file, 'database': str(db_file),
                'device': str(device), 'frames': result.num_frames, 'sequences': result.num_sequences,
                'protocols': protocols, 'seq': options.seq, 'filter': options.slerp_filter,
                'seconds': round(seconds, 3)}
        write_results(result, out_dir, info)
        table = format_table(result)
        print(table)
        logger.info('results:\n%s', table, extra={'file_only': True})
        if options.slerp_filter:
            print('(--filter: slerp-smoothed rotations; the official row scores MPVPE on the unsmoothed vertices, '
                  'as the released script does; corrected smooths them too)')
        logger.info('results written to %s', out_dir)
        if options.plot:
            plots = write_accel_plots(result, out_dir)
            logger.info('%d acceleration-error plots in %s', len(plots), out_dir / PLOT_DIR)
        if render:
            videos = render_predictions(cfg, result, image_paths, db, model.smpl, out_dir / 'render',
                                        progress=progress, plain=options.render_plain, start_frame=options.frame)
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

"""Result files and the printed table of an evaluation (mm)."""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from lib.core.io import atomic_write
from lib.eval.protocol import EVAL_SETS, METRICS, EvalResult

RESULTS_FILE = 'results.json'
SEQUENCES_FILE = 'per_sequence.csv'
INFO_FILE = 'eval_info.json'
FRAMES_FILE = 'per_frame.npz'
_TABLE_COLUMNS = (('pa_mpjpe', 'PA-MPJPE'), ('mpjpe', 'MPJPE'), ('mpvpe', 'MPVPE'), ('accel_err', 'Accel'))


def format_table(result: EvalResult) -> str:
    """The summary as an aligned text table (dataset, protocol, frames, metrics in mm)."""
    label = EVAL_SETS[result.dataset].label
    header = ['dataset', 'protocol', 'frames'] + [title for _, title in _TABLE_COLUMNS]
    lines = [header]
    for row, values in result.summary.items():
        lines.append([label, row, str(result.num_frames)]
                     + ['-' if values[key] is None else f'{values[key]:.2f}' for key, _ in _TABLE_COLUMNS])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ['  '.join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
            for line in lines]
    text.insert(1, '-' * len(text[0]))
    return '\n'.join(text + ['(mm; Accel in mm/frame^2; official = released evaluate.py frame order, '
                             'corrected = natural order)'])


def write_results(result: EvalResult, out_dir: str | os.PathLike, info: dict) -> None:
    """Write the result files into ``out_dir``, each atomically (:func:`lib.core.io.atomic_write`), with
    ``results.json`` last:

    - ``per_frame.npz``: ``sequence_names (S,)`` and, for every predicted frame (M positions, sequences
      concatenated), ``seq_id``, ``frame`` (index in its sequence after dropping invalid frames), ``db_row``
      and ``<row>__<metric>`` in mm (NaN where not scored; the official row is indexed by scored position);
    - ``per_sequence.csv``: dataset, protocol, sequence, frames and the metrics in mm;
    - ``eval_info.json``: ``info`` (checkpoint, database, frames, timing, ...);
    - ``results.json``: ``{protocol: {pa_mpjpe, mpjpe, mpvpe, accel_err}}`` in mm (null where not scored).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = result.frames
    arrays = {'sequence_names': np.asarray(frames.names), 'seq_id': frames.seq_id,
              'frame': np.arange(frames.num_frames) - frames.starts[frames.seq_id], 'db_row': frames.rows}
    for row, values in result.frame_errors.items():
        arrays.update({f'{row}__{metric}': value for metric, value in values.items()})
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write(out_dir / FRAMES_FILE, buf.getvalue())
    text = io.StringIO()
    writer = csv.writer(text, lineterminator='\n')
    writer.writerow(['dataset', 'protocol', 'sequence', 'frames', *(f'{m}_mm' for m in METRICS)])
    for seq in result.sequences:
        writer.writerow([result.dataset, seq['protocol'], seq['sequence'], seq['frames'],
                         *('' if seq[m] is None else f'{seq[m]:.4f}' for m in METRICS)])
    atomic_write(out_dir / SEQUENCES_FILE, text.getvalue())
    atomic_write(out_dir / INFO_FILE, json.dumps(info, indent=2) + '\n')
    atomic_write(out_dir / RESULTS_FILE, json.dumps(result.summary, indent=2) + '\n')

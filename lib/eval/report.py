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
from lib.utils.metrics import METRIC_UNITS

RESULTS_FILE = 'results.json'
SEQUENCES_FILE = 'per_sequence.csv'
INFO_FILE = 'eval_info.json'
FRAMES_FILE = 'per_frame.npz'


def format_table(result: EvalResult) -> str:
    """The summary as an aligned text table (dataset, protocol, frames, the metrics under their names in
    results.json)."""
    label = EVAL_SETS[result.dataset].label
    header = ['dataset', 'protocol', 'frames', *METRICS]
    lines = [header]
    for row, values in result.summary.items():
        lines.append([label, row, str(result.num_frames)]
                     + ['-' if values[key] is None else f'{values[key]:.2f}' for key in METRICS])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ['  '.join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
            for line in lines]
    text.insert(1, '-' * len(text[0]))
    units = ', '.join(f'{m} {METRIC_UNITS[m]}' for m in METRICS)
    return '\n'.join(text + [f'({units}; official = released evaluate.py frame order, corrected = natural order)'])


def write_results(result: EvalResult, out_dir: str | os.PathLike, info: dict) -> None:
    """Write the result files into ``out_dir``, each atomically (:func:`lib.core.io.atomic_write`), with
    ``results.json`` last:

    - ``per_frame.npz``: ``sequence_names (S,)`` and, for every predicted frame (M positions, sequences
      concatenated), ``seq_id``, ``frame`` (index in its sequence after dropping invalid frames), ``db_row``
      and ``<row>__<metric>`` in mm (NaN where not scored; the official row is indexed by scored position);
    - ``per_sequence.csv``: dataset, protocol, sequence, frames and the metrics;
    - ``eval_info.json``: ``info`` (checkpoint, database, frames, timing, ...) and ``units``
      ``{metric: unit}``: mm, accel_err mm/frame^2 (:data:`lib.utils.metrics.METRIC_UNITS`);
    - ``results.json``: ``{protocol: {pa_mpjpe, mpjpe, mpvpe, accel_err}}`` (null where not scored), the
      layout scripts written for earlier versions read, so it holds nothing else.
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
    writer.writerow(['dataset', 'protocol', 'sequence', 'frames', *METRICS])
    for seq in result.sequences:
        writer.writerow([result.dataset, seq['protocol'], seq['sequence'], seq['frames'],
                         *('' if seq[m] is None else f'{seq[m]:.4f}' for m in METRICS)])
    atomic_write(out_dir / SEQUENCES_FILE, text.getvalue())
    info = {**info, 'units': {m: METRIC_UNITS[m] for m in METRICS}}
    atomic_write(out_dir / INFO_FILE, json.dumps(info, indent=2) + '\n')
    atomic_write(out_dir / RESULTS_FILE, json.dumps(result.summary, indent=2) + '\n')

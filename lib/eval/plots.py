"""``evaluate.py --plot``: the released script's per-sequence acceleration-error plot, drawn with matplotlib's
headless Agg backend, and the values it plots.

Per sequence, in ``<eval output>/plot/``:

- ``GLoT_accel_pred_error_<sequence>.png``: the curve of :func:`lib.eval.protocol.official_accel_curve` (mm/frame^2)
  against the time step (0 .. n-3; step t is centred on frame t+1), one line per protocol row;
- ``GLoT_accel_pred_error_<sequence>.csv``: ``time_step``, ``frame`` and one column per row, the plotted values.

The released script names the file after ``--seq`` (so every sequence overwrote the same file); here each
sequence has its own.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lib.core.io import atomic_write
from lib.eval.protocol import EvalResult

PLOT_DIR = 'plot'
PREFIX = 'GLoT_accel_pred_error_'
COLOURS = {'official': '#FF7F0E', 'corrected': '#3183F7'}


def write_accel_plots(result: EvalResult, out_dir: str | Path) -> list[Path]:
    """Write the PNG and CSV of every sequence of ``result`` into ``out_dir/plot`` (each atomically,
    :func:`lib.core.io.atomic_write`); returns the PNG paths."""
    folder = Path(out_dir) / PLOT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    frames, curves = result.frames, result.accel_curves
    written = []
    for start, n, name in zip(frames.starts.tolist(), frames.lengths.tolist(), frames.names):
        steps = np.arange(n - 2)
        values = {row: curve[start + 1:start + n - 1] for row, curve in curves.items()}
        stem = PREFIX + name.replace('/', '_')
        text = io.StringIO()
        writer = csv.writer(text, lineterminator='\n')
        writer.writerow(['time_step', 'frame', *(f'{row}_mm_per_frame2' for row in values)])
        for t in steps.tolist():
            writer.writerow([t, t + 1, *(f'{v[t]:.6f}' for v in values.values())])
        atomic_write(folder / f'{stem}.csv', text.getvalue())
        atomic_write(folder / f'{stem}.png', _figure_png(steps, values, name))
        written.append(folder / f'{stem}.png')
    return written


def _figure_png(steps: np.ndarray, values: dict[str, np.ndarray], title: str) -> bytes:
    """The released plot's look (15 x 8 inches, no x tick labels) as PNG bytes, without pyplot's global state."""
    figure = Figure(figsize=(15, 8))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for row, curve in values.items():
        axes.plot(steps, curve, label=f'GLoT ({row})', color=COLOURS.get(row))
    axes.set_xlabel('time step', fontsize=10)
    axes.set_ylabel('acceleration error (mm/frame$^2$)', fontsize=10)
    axes.set_title(title, fontsize=10)
    axes.tick_params(axis='x', which='both', bottom=False, top=False, labelbottom=False)
    axes.tick_params(axis='y', labelsize=7)
    axes.set_xlim(-10, len(steps) + 10)
    axes.set_ylim(bottom=-3)
    axes.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', bbox_inches='tight')
    return buffer.getvalue()

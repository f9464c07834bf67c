"""Batch mode: many videos through the demo, each into its own output folder, sharded over torchrun processes.

``--vid_file`` names a batch when it is a folder holding videos (files ending in :data:`VIDEO_EXTENSIONS`,
and sub-folders of frames; hidden names skipped; a folder holding images directly is one video, as before) or a ``.txt`` list with
one video path per line (blank lines and ``#`` comments skipped, relative paths relative to the list's
folder). Videos are processed in sorted order (a list: its order) with the models loaded once; each writes
``<output_folder>/<video name>/`` exactly as a single-video run, plus :data:`DONE_FILE`.

**Complete outputs** (a rerun skips the video and says so): ``<video name>/glot_done.json`` exists, was
written (atomically) after every other output of the video, lists files that all still exist, and records
the same video identity (path, size, modification time; for frame folders every file's) and the same
settings: the whole config except ``DEVICE`` (every behaviour setting is a ``DEMO.*`` key), the output
switches (a box file by identity) and the GLoT and SPIN weight files by identity. Anything else reruns the
video (its old marker is removed first).

A video that fails (unreadable, nobody found, a crash) is reported and the others go on; a listed path
that does not exist is reported as ``missing``. At the end one table (video, people, frames, seconds,
status) is printed and written as ``<output_folder>/batch_summary.json``; if any video failed the run
raises :class:`BatchFailed` (exit status 2, or 1 when a failure was not a :class:`UserError`).

Under ``torchrun --nproc_per_node N`` (``WORLD_SIZE`` > 1) rank ``r`` takes videos ``r, r + N, r + 2N, ...``
of the sorted list, runs on ``cuda:LOCAL_RANK`` when ``DEVICE`` is ``auto`` or ``cuda`` and a GPU is there
(else as ``DEVICE`` says), and rank 0 writes the summary after all ranks met (gloo process group, waiting at
most ``DEMO.BATCH_TIMEOUT_MIN`` minutes).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from lib.core.dist import DistContext, all_gather, barrier, init_process, leave_group
from lib.core.errors import UserError
from lib.core.io import atomic_write, probe_output_dir
from lib.demo.cache import file_key, video_key
from lib.demo.inference import DemoFiles, GLoTPredictor, demo_files
from lib.demo.pipeline import DemoOptions, DemoResult, run_demo
from lib.vis.video import IMAGE_EXTENSIONS, FrameReader

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv', '.flv')
LIST_EXTENSIONS = ('.txt',)
DONE_FILE = 'glot_done.json'
SUMMARY_FILE = 'batch_summary.json'
BOX_FILE_EXTENSIONS = ('.csv', '.json')
# Bump when the marker's content or the meaning of "complete" changes (older markers then rerun).
DONE_VERSION = 2


class BatchFailed(UserError):
    """Some videos of a batch failed; the message names them and the summary file."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class BatchRow:
    """One video's line of the summary; ``status`` is done, skipped, failed or missing; ``seconds`` is the
    wall time of this run (the original run's for a skipped video)."""

    video: str
    output: str
    status: str
    people: int = 0
    frames: int = 0
    seconds: float = 0.0
    error: str = ''
    rank: int = 0


def batch_inputs(vid_file: str | os.PathLike) -> list[Path] | None:
    """The videos named by a batch input (a list file or a folder of videos), or None when ``vid_file`` is
    a single video (a video file or a folder of frames).

    Raises:
        UserError: a list that names nothing, a folder with neither videos nor images.
    """
    path = Path(vid_file).expanduser()
    if path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
        return _read_list(path)
    if not path.is_dir() or any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir() if p.is_file()):
        return None
    videos = [p for p in sorted(path.iterdir()) if not p.name.startswith('.') and (
              (p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
              or (p.is_dir() and any(q.suffix.lower() in IMAGE_EXTENSIONS for q in p.iterdir())))]
    if not videos:
        raise UserError(f"folder {path} holds no videos ({'/'.join(VIDEO_EXTENSIONS)} files or folders of "
                        f"frames) and no images; give a video, a folder of them or a .txt list")
    return videos


def _read_list(path: Path) -> list[Path]:
    lines = [line.strip() for line in path.read_text(encoding='utf-8', errors='replace').splitlines()]
    videos = [Path(line).expanduser() for line in lines if line and not line.startswith('#')]
    videos = [v if v.is_absolute() else path.parent / v for v in videos]
    if not videos:
        raise UserError(f"list {path} names no videos (one path per line; blank lines and # comments skipped)")
    return videos


def output_name(video: Path) -> str:
    """The folder name a video's outputs get (as :func:`lib.demo.pipeline.run_demo` names it)."""
    return video.name if video.is_dir() else video.stem


def run_videos(cfg, vid_file: str | os.PathLike, output_folder: str | os.PathLike = 'demo_output',
               options: DemoOptions | None = None, checkpoint: str | os.PathLike | None = None
               ) -> DemoResult | list[BatchRow]:
    """``demo.py --vid_file``: one video through :func:`run_demo`, or a batch through :func:`run_batch`."""
    videos = batch_inputs(vid_file)
    if videos is None:
        if DistContext.from_env().enabled:
            raise UserError('torchrun shares out the videos of a folder or .txt list; give --vid_file one of those '
                            'or run a single video without torchrun')
        return run_demo(cfg, vid_file, output_folder, options, checkpoint)
    return run_batch(cfg, videos, output_folder, options, checkpoint)


def run_batch(cfg, videos: list[Path], output_folder: str | os.PathLike = 'demo_output',
              options: DemoOptions | None = None, checkpoint: str | os.PathLike | None = None,
              ) -> list[BatchRow]:
    """Run the demo on this rank's share of ``videos`` (see the module docstring) and return every video's
    :class:`BatchRow` (all ranks', in input order).

    ``options.bbox_file``, when given, is a folder holding ``<video name>.csv`` or ``.json`` per video.

    Raises:
        UserError: two videos with one output name, a box-file path that is not a folder, missing weights,
            an output folder that cannot be written (:class:`lib.core.io.OutputError`).
        BatchFailed: at the end, when any video failed or was missing.
    """
    options = options or DemoOptions()
    output_folder = Path(output_folder)
    _check_names(videos, output_folder)
    probe_output_dir(output_folder)    # before any video: an unwritable folder fails the batch in one line
    if options.bbox_file is not None and not Path(options.bbox_file).is_dir():
        raise UserError(f"with many videos --bbox_file must be a folder of <video name>.csv/.json box files, "
                        f"got {options.bbox_file}")
    files = demo_files(cfg, checkpoint)      # once for the whole batch
    settings = _settings_key(cfg, options, files)
    ranks, device = init_process(cfg.DEVICE, cpu_collectives=True, timeout_min=cfg.DEMO.BATCH_TIMEOUT_MIN)
    if ranks.enabled and str(device) != cfg.DEVICE:
        cfg = cfg.clone()
        cfg.defrost()
        cfg.DEVICE = str(device)
        cfg.freeze()
    prefix = f'[rank {ranks.rank}/{ranks.world_size}] ' if ranks.world_size > 1 else ''
    predictor: list[GLoTPredictor] = []  # built at the first video that needs it, then reused

    def get_predictor() -> GLoTPredictor:
        if not predictor:
            predictor.append(GLoTPredictor(cfg, files))
        return predictor[0]

    start = time.perf_counter()
    mine = ranks.share(videos)
    rows = []
    for count, index in enumerate(mine, start=1):
        logger.info(f'{prefix}video {index + 1}/{len(videos)} ({count}/{len(mine)} on this process): '
                    f'{videos[index]}')
        row = _process(cfg, videos[index], output_folder, options, checkpoint, settings, get_predictor)
        row.rank = ranks.rank
        logger.info(f'{prefix}{row.video}: {row.status}' + (f' ({row.error})' if row.error else ''))
        rows.append((index, row))
    rows = [item for part in all_gather(ranks, rows) for item in part]
    rows = [row for _, row in sorted(rows, key=lambda item: item[0])]
    wall = time.perf_counter() - start
    if ranks.rank == 0:
        summary = write_summary(rows, output_folder / SUMMARY_FILE, wall, ranks.world_size)
        logger.info(summary)
    barrier(ranks)  # the summary is on disk before any rank exits (torchrun stops the rest)
    leave_group(ranks)
    failed = [row for row in rows if row.status in ('failed', 'missing')]
    if failed:
        bug = any(row.error.startswith('bug: ') for row in failed)
        raise BatchFailed(f"{len(failed)} of {len(rows)} videos failed ({', '.join(r.video for r in failed[:5])}"
                          f"{', ...' if len(failed) > 5 else ''}); see {output_folder / SUMMARY_FILE}",
                          exit_code=1 if bug else 2)
    return rows


def _check_names(videos: list[Path], output_folder: Path) -> None:
    seen: dict[str, Path] = {}
    for video in videos:
        name = output_name(video)
        if name in seen:
            raise UserError(f"{seen[name]} and {video} would both write to {output_folder / name}; rename one "
                            f"(each video's outputs go to <output_folder>/<video name>/)")
        seen[name] = video


def _settings_key(cfg, options: DemoOptions, files: DemoFiles) -> dict:
    """Everything besides the video that decides a video's outputs (see the module docstring)."""
    config = json.loads(json.dumps(cfg))
    config.pop('DEVICE')
    outputs = asdict(options)
    outputs.pop('bbox_file')  # the video's own box file is added per video
    return {'version': DONE_VERSION, 'config': config, 'outputs': outputs, 'glot': file_key(files.glot),
            'spin': file_key(files.spin)}


def _box_file(folder: str, video: Path) -> Path:
    for ext in BOX_FILE_EXTENSIONS:
        path = Path(folder) / f'{output_name(video)}{ext}'
        if path.is_file():
            return path
    raise UserError(f"no box file {output_name(video)}.csv or .json in {folder} (--bbox_file folder)")


def _process(cfg, video: Path, output_folder: Path, options: DemoOptions, checkpoint, settings: dict,
             get_predictor) -> BatchRow:
    """One video: skip it when its outputs are complete, else run it and write its marker last."""
    row = BatchRow(str(video), str(output_folder / output_name(video)), 'failed')
    if not video.exists():
        row.status, row.error = 'missing', f'not found: {video}'
        return row
    start = time.perf_counter()
    try:
        if options.bbox_file is not None:
            options = replace(options, bbox_file=str(_box_file(options.bbox_file, video)))
        key = json.loads(json.dumps({**settings, 'video': video_key(FrameReader(video).info),
                                     'bbox_file': file_key(options.bbox_file) if options.bbox_file else None}))
        marker = Path(row.output) / DONE_FILE
        done = _read_marker(marker)
        if done is not None and done['key'] == key and all((marker.parent / f).exists() for f in done['files']):
            row.status, row.people, row.frames, row.seconds = 'skipped', done['people'], done['frames'], \
                done['seconds']
            logger.info(f'skipping {video}: outputs complete ({marker})')
            return row
        marker.unlink(missing_ok=True)
        result = run_demo(cfg, video, output_folder, options, checkpoint, predictor=get_predictor())
        row.status, row.people, row.frames = 'done', len(result.results), result.num_frames
        row.seconds = time.perf_counter() - start
        files = [str(path.relative_to(result.output_dir)) for path in result.files]
        atomic_write(marker, json.dumps({'key': key, 'files': files, 'people': row.people, 'frames': row.frames,
                                         'seconds': row.seconds}, indent=1))
    except UserError as err:
        row.error, row.seconds = str(err), time.perf_counter() - start
    except Exception as err:  # a crash on one video must not stop the others; its traceback is logged
        logger.exception(f'{video} failed')
        row.error, row.seconds = f'bug: {type(err).__name__}: {err}', time.perf_counter() - start
    return row


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_summary(rows: list[BatchRow], path: Path, wall_seconds: float, world_size: int = 1) -> str:
    """Write ``batch_summary.json`` (the rows, counts per status, wall seconds, videos per hour of the videos
    run here) and return the printed table."""
    counts = {status: sum(row.status == status for row in rows) for status in ('done', 'skipped', 'failed',
                                                                               'missing')}
    rate = counts['done'] / wall_seconds * 3600 if wall_seconds > 0 else 0.0
    atomic_write(path, json.dumps({'videos': [asdict(row) for row in rows], 'counts': counts,
                                   'wall_seconds': wall_seconds, 'videos_per_hour': rate,
                                   'world_size': world_size}, indent=1))
    width = max([len('video')] + [len(Path(row.video).name) for row in rows])
    lines = [f'{"video":<{width}s}  {"people":>6s}  {"frames":>6s}  {"time (s)":>8s}  status',
             '-' * (width + 40)]
    for row in rows:
        status = row.status + (f': {row.error}' if row.error else '')
        lines.append(f'{Path(row.video).name:<{width}s}  {row.people:6d}  {row.frames:6d}  {row.seconds:8.1f}  '
                     f'{status}')
    lines.append(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed, "
                 f"{counts['missing']} missing in {wall_seconds:.1f} s on {world_size} process(es) "
                 f"({rate:.0f} videos/hour); wrote {path}")
    return '\n'.join(lines)

"""The demo's stage cache: detections and features of a video are reused on a rerun only when every input
that produced them is unchanged.

A cached value lives in ``<output>/cache/<stage>.pkl`` (joblib) as ``{'version', 'key', 'value'}``. The key
describes the inputs: a video file by path, size and modification time (ns); a folder of frames by every
file's name, size and modification time (so replacing frames, even with older timestamps, invalidates it);
plus the settings and weight files of the stage.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import joblib

from lib.core.io import atomic_path
from lib.vis.video import VideoInfo

# Bump when the cached detection / feature formats or the keys change.
CACHE_VERSION = 2


def save_joblib(obj, path: Path) -> Path:
    """Write ``obj`` with joblib to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        joblib.dump(obj, tmp)
    return path


def file_key(path: Path) -> dict:
    """A file's identity: resolved path, size (bytes) and modification time (ns)."""
    stat = Path(path).stat()
    return {'path': str(Path(path).resolve()), 'size': stat.st_size, 'mtime_ns': stat.st_mtime_ns}


def video_key(info: VideoInfo) -> dict:
    """The identity of a video file (:func:`file_key`) or of a frame folder: a digest of every file's name,
    size and modification time, and the number of frames."""
    if not info.is_folder:
        return file_key(info.path)
    digest = hashlib.sha1()
    for entry in sorted(info.path.iterdir()):
        if entry.is_file():
            stat = entry.stat()
            digest.update(f'{entry.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n'.encode())
    return {'folder': str(info.path.resolve()), 'frames': info.num_frames, 'files': digest.hexdigest()}


class StageCache:
    """joblib files ``<folder>/<name>.pkl``; a value is reused only when the stored key equals the current
    one, and a file that cannot be read is recomputed, never trusted."""

    def __init__(self, folder: Path, enabled: bool = True):
        self.folder = folder
        self.enabled = enabled

    def load(self, name: str, key: dict):
        """The cached value of stage ``name`` for ``key``, or None."""
        path = self.folder / f'{name}.pkl'
        if not self.enabled or not path.is_file():
            return None
        try:
            stored = joblib.load(path)
        except Exception:  # a cache we cannot read is recomputed, never trusted
            return None
        if stored.get('version') != CACHE_VERSION or stored.get('key') != json.loads(json.dumps(key)):
            return None
        return stored['value']

    def save(self, name: str, key: dict, value) -> None:
        """Store ``value`` of stage ``name`` under ``key`` (when the cache is enabled)."""
        if self.enabled:
            save_joblib({'version': CACHE_VERSION, 'key': json.loads(json.dumps(key)), 'value': value},
                        self.folder / f'{name}.pkl')

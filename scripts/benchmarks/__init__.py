"""Benchmark parts for scripts/benchmark.py, and what they share."""
from __future__ import annotations

from pathlib import Path


def ensure_assets(root: Path, spin: bool = True) -> Path:
    """``root`` as a DATA_ROOT with base_data/ in it: the real files if present, else generated stand-ins
    (same sizes, so the same speed) written there."""
    if not (root / 'base_data' / 'SMPL_NEUTRAL.pkl').is_file():
        from scripts.make_synthetic_assets import make_synthetic_assets

        print(f'no SMPL files under {root}; using generated stand-ins (same sizes, same speed)')
        make_synthetic_assets(root, seed=0, spin=spin)
    return root


def benchmark_data_root(cfg_file: str, data_root: str, tmp: str) -> Path:
    """``data_root``, else the config's DATA_ROOT, when it holds SMPL files; otherwise generated stand-ins in
    the temporary folder ``tmp``."""
    from lib.core.config import data_root as cfg_data_root, load_config

    root = Path(data_root) if data_root else cfg_data_root(load_config(cfg_file))
    if (root / 'base_data' / 'SMPL_NEUTRAL.pkl').is_file():
        return root
    return ensure_assets(Path(tmp) / 'data')

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

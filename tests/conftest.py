"""Shared fixtures: generated stand-in assets under a temporary DATA_ROOT, the entry points as modules."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from lib.core.config import load_config  # noqa: E402
from scripts.make_synthetic_assets import make_synthetic_assets  # noqa: E402


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory) -> Path:
    """A DATA_ROOT holding generated base_data/ (SMPL pkls, regressors, mean params, SPIN checkpoint)."""
    return make_synthetic_assets(tmp_path_factory.mktemp('data_root'), seed=0)


@pytest.fixture(scope='session')
def smpl_variants_root(tmp_path_factory) -> Path:
    """A DATA_ROOT that also has smpl_variants/{v1.1.0,chumpy}/SMPL_NEUTRAL.pkl (no SPIN checkpoint)."""
    return make_synthetic_assets(tmp_path_factory.mktemp('variants_root'), seed=0, spin=False, variants=True)


@pytest.fixture(scope='session')
def make_cfg(synthetic_root):
    """``make_cfg(cfg_file=None, *opts)``: a frozen config on the synthetic DATA_ROOT, on the CPU."""
    def _make(cfg_file: str | None = None, *opts):
        path = str(REPO_ROOT / cfg_file) if cfg_file else None
        return load_config(path, ['DATA_ROOT', str(synthetic_root), 'DEVICE', 'cpu', *map(str, opts)])
    return _make


@pytest.fixture
def entry_points() -> dict:
    """``train.py``, ``evaluate.py`` and ``demo.py`` loaded as fresh modules, by name."""
    modules = {}
    for name in ('train', 'evaluate', 'demo'):
        spec = importlib.util.spec_from_file_location(f'{name}_cli', REPO_ROOT / f'{name}.py')
        modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(modules[name])
    return modules


@pytest.fixture
def dry_entry_points(entry_points, monkeypatch):
    """The three entry points with their work replaced by a recorder: ``(modules, calls)``, ``calls[name]`` =
    the arguments the work was called with (config first)."""
    calls = {}

    def record(name, result=None):
        def fake(*args, **kwargs):
            calls[name] = (*args, kwargs)
            return result
        return fake

    monkeypatch.setattr(entry_points['train'], 'train', record('train', {'stop_signal': None}))
    monkeypatch.setattr(entry_points['evaluate'], 'run_evaluation', record('evaluate'))
    monkeypatch.setattr(entry_points['demo'], 'run_videos', record('demo'))
    return entry_points, calls

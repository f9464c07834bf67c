"""Every fault case of ``scripts/check_faults.py`` (races, kills, resumes, odd configs, bad data, unwritable
outputs on real read-only and full mounts) gives its promised outcome: a one-line refusal, a repaired file, or
untouched earlier results. A case that could only simulate its fault here (no permission to mount) passes
with a warning that says so."""
from __future__ import annotations

import warnings

import pytest

from scripts.check_faults import CASES, Workspace


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    return Workspace.create(tmp_path_factory.mktemp('faults'))


@pytest.mark.parametrize('name', sorted(CASES))
def test_fault_case(workspace, name):
    notes = len(workspace.notes)
    CASES[name](workspace)
    for note in workspace.notes[notes:]:
        warnings.warn(f'simulated, not real: {note}')

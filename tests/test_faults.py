"""Every fault case of ``scripts/check_faults.py`` (races, kills, resumes, odd configs, bad data, unwritable
outputs) gives its promised outcome: a one-line refusal, a repaired file, or untouched earlier results."""
from __future__ import annotations

import pytest

from scripts.check_faults import CASES, Workspace


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    return Workspace.create(tmp_path_factory.mktemp('faults'))


@pytest.mark.parametrize('name', sorted(CASES))
def test_fault_case(workspace, name):
    CASES[name](workspace)

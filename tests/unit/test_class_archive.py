"""`python -m localmode.class_archive` as `make setup` runs it: a failed recording warns and
lets setup go on (commands then start without an archive)."""

from __future__ import annotations

import subprocess

import pytest

from localmode import class_archive


@pytest.mark.parametrize("failure", [class_archive.ArchiveError("the story failed: exit 1"),
                                     PermissionError("[Errno 13] Permission denied: '/root/.cache/datadominion'"),
                                     subprocess.TimeoutExpired(["python"], 900)])
def test_a_failed_recording_warns_and_setup_goes_on(monkeypatch, capsys, failure):
    def fail():
        raise failure

    monkeypatch.setattr(class_archive, "ensure", fail)
    assert class_archive.main([]) == 0
    assert capsys.readouterr().err == f"warning: {failure}\n"


def test_archives_turned_off_are_reported_as_off(monkeypatch, capsys):
    monkeypatch.setenv("DATADOMINION_CLASS_ARCHIVE", "off")
    assert class_archive.main([]) == 0
    assert capsys.readouterr().out == "class-data archive: off (DATADOMINION_CLASS_ARCHIVE=off)\n"

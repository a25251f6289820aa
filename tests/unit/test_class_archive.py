"""`python -m localmode.class_archive` as `make setup` runs it: a failed recording warns and
lets setup go on (commands then start without an archive)."""

from __future__ import annotations

import os
import subprocess
import time

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


def test_recording_deletes_only_other_archives_unused_for_two_weeks(tmp_path):
    def archive(name, days_unused):
        path = tmp_path / f"driver-classes-{name}.jsa"
        path.write_bytes(b"classes")
        when = time.time() - days_unused * 86400
        os.utime(path, (when, when))
        return path

    kept, recent, stale = archive("new", 40), archive("other-checkout", 3), archive("old-pyspark", 15)
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("")
    os.utime(unrelated, (0, 0))
    assert class_archive.prune_unused(kept) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([kept.name, recent.name, unrelated.name])

"""Atomic writes leave the old file or the new one, never half of one, and no temporary files."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from thesis_lib.files import atomic_write, atomic_write_bytes, atomic_write_text


def test_writes_and_replaces(tmp_path):
    p = tmp_path / "sub" / "f.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert [q.name for q in p.parent.iterdir()] == ["f.txt"]


def test_interrupted_write_keeps_the_old_file(tmp_path):
    p = tmp_path / "f.bin"
    atomic_write_bytes(p, b"old")

    def half(fh):
        fh.write(b"ne")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(p, half)
    assert p.read_bytes() == b"old"
    assert [q.name for q in tmp_path.iterdir()] == ["f.bin"]


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic_write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_record_read_writes_only_when_asked(tmp_path, monkeypatch):
    from thesis_lib.files import READS_LOG_ENV, record_read

    log = tmp_path / "reads.txt"
    monkeypatch.delenv(READS_LOG_ENV, raising=False)
    record_read(tmp_path / "a.pt")
    assert not log.exists()
    monkeypatch.setenv(READS_LOG_ENV, str(log))
    record_read(tmp_path / "a.pt")
    record_read(tmp_path / "b.json")
    assert log.read_text().splitlines() == [str((tmp_path / "a.pt").resolve()), str((tmp_path / "b.json").resolve())]


def test_loading_a_checkpoint_and_a_cached_metric_are_recorded(tmp_path, monkeypatch):

    from thesis_lib import likelihoods
    from thesis_lib.checkpoints import load_checkpoint
    from thesis_lib.config import ChapterConfig
    from thesis_lib.files import READS_LOG_ENV

    log = tmp_path / "reads.txt"
    monkeypatch.setenv(READS_LOG_ENV, str(log))
    committed = ChapterConfig.from_parameters(chapter="05").checkpoint_dir
    cfg = ChapterConfig.from_parameters(chapter="05", checkpoint_dir=tmp_path)  # copies: the test writes a cache
    for name in ("vae_standard.pt", "vae_nll.pt"):
        shutil.copy(committed / name, tmp_path / name)
    load_checkpoint(cfg.checkpoint_dir / "vae_standard.pt")
    likelihoods.cached_metric(cfg, "vae_nll", "a_metric", lambda: 1.5)
    assert log.read_text().splitlines() == [str((tmp_path / n).resolve()) for n in
                                            ("vae_standard.pt", "vae_nll.pt", "vae_nll.metrics.json")]

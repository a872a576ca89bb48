"""Atomic writes leave the old file or the new one, never half of one, and no temporary files."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from thesis_lib.ground.files import atomic_write, atomic_write_bytes, atomic_write_text


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


def test_record_read_tells_the_installed_hooks_and_nobody_else(tmp_path):
    from thesis_lib.ground.files import on_read, record_read

    record_read(tmp_path / "unheard.pt")  # no hook: nothing happens
    seen: list = []
    remove = on_read(seen.append)
    record_read(tmp_path / "a.pt")
    record_read(tmp_path / "sub" / ".." / "b.json")
    remove()
    record_read(tmp_path / "c.pt")
    assert seen == [(tmp_path / "a.pt").resolve(), (tmp_path / "b.json").resolve()]


def test_the_reads_log_is_written_only_when_the_build_names_one(tmp_path):
    from thesis_lib.ground.files import record_read
    from thesis_lib.publishing.reads import READS_LOG_ENV, log_reads

    log = tmp_path / "reads.txt"
    assert log_reads({}) is None
    record_read(tmp_path / "a.pt")
    assert not log.exists()
    stop = log_reads({READS_LOG_ENV: str(log)})
    try:
        record_read(tmp_path / "a.pt")
        record_read(tmp_path / "b.json")
    finally:
        stop()
    record_read(tmp_path / "c.pt")
    assert log.read_text().splitlines() == [str((tmp_path / "a.pt").resolve()), str((tmp_path / "b.json").resolve())]


def test_loading_a_checkpoint_and_a_cached_metric_are_recorded(tmp_path, monkeypatch):

    from thesis_lib.reproduction import likelihoods
    from thesis_lib.runtime.checkpoints import load_checkpoint
    from thesis_lib.ground.config import ChapterConfig
    from thesis_lib.publishing.reads import READS_LOG_ENV, log_reads

    log = tmp_path / "reads.txt"
    monkeypatch.setattr("thesis_lib.ground.files._READ_HOOKS", [])
    log_reads({READS_LOG_ENV: str(log)})
    committed = ChapterConfig.from_parameters(chapter="05").checkpoint_dir
    cfg = ChapterConfig.from_parameters(chapter="05", checkpoint_dir=tmp_path)  # copies: the test writes a cache
    for name in ("vae_standard.pt", "vae_nll.pt"):
        shutil.copy(committed / name, tmp_path / name)
    load_checkpoint(cfg.checkpoint_dir / "vae_standard.pt")
    likelihoods.cached_metric(cfg, "vae_nll", "a_metric", lambda: 1.5)
    assert log.read_text().splitlines() == [str((tmp_path / n).resolve()) for n in
                                            ("vae_standard.pt", "vae_nll.pt", "vae_nll.metrics.json")]

"""The one progress rule of long coverage work (best-server watcher, cluster blocks, candidates):
the share done and the time left, at most every few seconds, never at the start or the end."""

from __future__ import annotations

import logging

import telcoplan.coverage._progress as pg


def test_messages_are_spaced_and_give_the_time_left(monkeypatch, caplog):
    clock = iter([100.0, 101.0, 103.0, 104.0, 110.0, 111.0, 130.0, 131.0])
    monkeypatch.setattr(pg.time, "perf_counter", lambda: next(clock))
    log = logging.getLogger("telcoplan.test-progress")
    with caplog.at_level(logging.INFO, logger="telcoplan.test-progress"):
        p = pg.Progress(log, "work", 10, "tiles", every=5.0, min_left=2.0)  # starts at 100
        p.update(0)  # 101: nothing done yet
        p.update(1)  # 103: 3 s since the start, under 5 s
        p.update(2)  # 104: 4 s
        p.update(4)  # 110: 10 s for 4 of 10 -> 15 s left
        p.update(5)  # 111: 1 s since the last message
        p.update(9)  # 130: 30 s for 9 -> 3.3 s left
        p.update(10)  # 131: all done
    assert [r.getMessage() for r in caplog.records] == [
        "work: 40% of 10 tiles, about 15 s left",
        "work: 90% of 10 tiles, about 3 s left",
    ]


def test_no_message_when_little_is_left(monkeypatch, caplog):
    clock = iter([0.0, 10.0])
    monkeypatch.setattr(pg.time, "perf_counter", lambda: next(clock))
    log = logging.getLogger("telcoplan.test-progress")
    with caplog.at_level(logging.INFO, logger="telcoplan.test-progress"):
        pg.Progress(log, "work", 100, "candidates", every=0.0, min_left=1.0).update(99)
    assert not caplog.records  # 10 s for 99 of 100: 0.1 s left

"""Progress messages of long coverage computations: the share done and the time left.

One rule for the best-server kernels' watcher thread (:mod:`telcoplan.coverage.bestserver`),
the blocks of tiles on a cluster (:mod:`telcoplan.coverage.tiled`) and the site planner's
candidates (:mod:`telcoplan.coverage.candidates`).
"""

from __future__ import annotations

import logging
import time

__all__ = ["EVERY_S", "MIN_LEFT_S", "Progress"]

EVERY_S = 5.0  # seconds between progress messages
MIN_LEFT_S = 1.0  # no message when less than this is left


class Progress:
    """Logs ``"<label>: <p>% of <total> <unit>, about <t> s left"`` (INFO, on ``log``) as the
    work is told how much is done (:meth:`update`): at most every ``every`` seconds, never
    before any or after all of it is done, and not when less than ``min_left`` seconds are left.
    The time left is the time so far, scaled by what is left over what is done."""

    def __init__(
        self,
        log: logging.Logger,
        label: str,
        total: int,
        unit: str,
        *,
        every: float = EVERY_S,
        min_left: float = MIN_LEFT_S,
    ) -> None:
        self.log, self.label, self.total, self.unit = log, label, total, unit
        self.every, self.min_left = every, min_left
        self.started = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        """``done`` of the ``total`` are done: a message if one is due."""
        now = time.perf_counter()
        if not 0 < done < self.total or now - self.last < self.every:
            return
        left = (now - self.started) * (self.total - done) / done
        if left >= self.min_left:
            self.log.info(
                "%s: %d%% of %d %s, about %.0f s left",
                self.label,
                100 * done // self.total,
                self.total,
                self.unit,
                left,
            )
            self.last = now

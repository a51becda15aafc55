"""What every stage module shares: the stage record, its result and the staging area."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from telcoplan.pipeline.inputs import PlanInputs

__all__ = ["Stage", "StageResult", "Staging"]

log = logging.getLogger(__name__)


@dataclass
class Staging:
    """Where a run's stages write (``folder``: the stage's own folder in the run's staging
    folder, with the files of the stages it depends on; what the stage adds there is moved into
    place at the end of the run) and what the stages before have produced: their part of
    ``summary`` and their ``results`` by stage (a result kept from an earlier run,
    :meth:`later`, is read when first looked up: a stage that never looks does not pay)."""

    folder: Path
    summary: dict[str, Any] = field(default_factory=dict)
    results: Mapping[str, Any] = field(default_factory=dict)
    #: the run's Dask client, started when first asked for (:attr:`client`); None: in-process
    connect: Callable[[], Any] | None = None

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` that the run's tiled work goes to (the cluster starts
        when first asked for); None when the run computes in this process."""
        return None if self.connect is None else self.connect()

    def __post_init__(self) -> None:
        if not isinstance(self.results, _Results):
            self.results = _Results(self.results)

    @staticmethod
    def later(load: Callable[[], Any], again: Callable[[], Any]) -> Any:
        """A result to put among ``results`` that is ``load()``-ed when first looked up (once,
        by one thread), or computed ``again()`` when it cannot be loaded."""
        return _Later(load, again)


class _Later:
    """See :meth:`Staging.later`."""

    def __init__(self, load: Callable[[], Any], again: Callable[[], Any]) -> None:
        self._load, self._again = load, again
        self._lock = threading.Lock()
        self._done = False
        self._value: Any = None

    def get(self) -> Any:
        with self._lock:
            if not self._done:
                try:
                    self._value = self._load()
                except Exception as exc:
                    log.warning(
                        "a result kept from an earlier run cannot be read (%s); computing it again",
                        exc,
                    )
                    self._value = self._again()
                self._done = True
            return self._value


class _Results(Mapping):
    """Results by stage, those of :meth:`Staging.later` read when first looked up."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getitem__(self, name: str) -> Any:
        value = self._values[name]
        return value.get() if isinstance(value, _Later) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@dataclass(frozen=True)
class StageResult:
    """A stage's part of :data:`~telcoplan.outputs.SUMMARY` (None: no part) and its in-memory result for the
    stages after it (the coverage rasters for gaps, …)."""

    summary: Mapping[str, Any] | None
    value: Any = None


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline, as the registry lists it.

    Attributes
    ----------
    name
        The key under ``stages:`` in a plan file and in :data:`~telcoplan.outputs.SUMMARY`.
    parse
        ``parse(mapping, base=folder) -> Params``: the checked parameters (defaults filled
        in); every problem is raised at once as a :class:`ParameterError`.
    run
        ``run(inputs, params, staging) -> StageResult``: writes into ``staging.folder``.
    layers
        Input layers the stage needs; without them it is skipped.
    strict
        A plan that configures the stage (a mapping under ``stages:``) must give ``layers``.
    after
        Stages whose results it needs; it is skipped when one of them did not run.
    presents
        It draws on every output before it (map, report): it runs after the run's provenance
        is in the summary.
    separate
        It may run in a child process forked from the run (:mod:`~telcoplan.pipeline.concurrency`)
        while the run goes on: it reads only its inputs, its parameters and the files and
        results in its :class:`Staging`, returns a small result, and runs no parallel numba
        kernel.
    """

    name: str
    parse: Callable[..., Any]
    run: Callable[..., StageResult]
    layers: tuple[str, ...] = ()
    strict: bool = False
    after: tuple[str, ...] = ()
    presents: bool = False
    separate: bool = False

    def skip_reason(self, inputs: PlanInputs, staging: Staging) -> str | None:
        """Why the stage does not run on these inputs (None: it runs)."""
        return self.skip_reason_for(inputs.vectors, staging.results)

    def skip_reason_for(self, layers: Collection[str], done: Collection[str]) -> str | None:
        """Why the stage does not run when the plan's vector layers are ``layers`` and the
        stages with a result are ``done`` (None: it runs)."""
        lacking = [k for k in self.layers if k not in layers]
        if lacking:
            return "no " + ", ".join(f"layers.{k}" for k in lacking)
        missing = [s for s in self.after if s not in done]
        if missing:
            return "needs the " + ", ".join(missing) + " stage"
        return None

"""The HTML report of a run (:mod:`telcoplan.report.html`); :data:`~telcoplan.outputs.SUMMARY` belongs to
:mod:`telcoplan.outputs`."""

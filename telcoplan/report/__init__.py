"""The HTML report of a run (:mod:`telcoplan.report.html`); ``summary.json`` belongs to
:mod:`telcoplan.outputs`."""

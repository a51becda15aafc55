"""Reports: ``summary.json`` (:mod:`telcoplan.report.summary`) and ``report.html``
(:mod:`telcoplan.report.html`)."""

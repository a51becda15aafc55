"""The sections of the HTML report, each built from the summary and optional tables.

Each ``*_section`` function returns the HTML of its section's body, or ``""`` when its data are
absent (the section is then left out). Text from the inputs goes through :func:`esc` (or a
``fmt_*`` helper) before it reaches the page; table cells that are not :class:`Safe` are
escaped by :func:`~telcoplan.report._blocks.html_table`.

The sections live in ``_sections_coverage`` (key figures, coverage, areas),
``_sections_network`` (gaps, sites, site review, backbone) and ``_sections_page`` (title, figure,
provenance), the shared building blocks in ``_blocks``; this module gathers them for
:mod:`telcoplan.report.html`.
"""

from __future__ import annotations

from telcoplan.report._blocks import Context, operators
from telcoplan.report._sections_coverage import areas_section, coverage_section, headline_section
from telcoplan.report._sections_network import (
    backbone_section,
    gaps_section,
    review_section,
    sites_section,
)
from telcoplan.report._sections_page import (
    default_title,
    figure_section,
    provenance_section,
    subtitle,
)

__all__ = [
    "Context",
    "areas_section",
    "backbone_section",
    "coverage_section",
    "default_title",
    "figure_section",
    "gaps_section",
    "headline_section",
    "operators",
    "provenance_section",
    "review_section",
    "sites_section",
    "subtitle",
]

"""Why a scan was set aside, as one of a few labels (for counters and metrics).

Contract
--------
:func:`reason_label` maps the free-text reason the reader, the intake or the
buffer gives (:class:`~nowcast.errors.ScanError` reasons, a scan ahead of the
clock, an outlier the next scan did not confirm) to one of :data:`LABELS`, so that
a Prometheus label has a bounded set of values whatever the text says. The first
pattern that matches wins; a reason no pattern knows is ``other``.
"""

from __future__ import annotations

import re

_PATTERNS = (
    ("unreadable", r"not a readable NetCDF|cannot read the data|empty file|"
                   r"no such file|cannot stat"),
    ("no_reflectivity", r"no reflectivity variable|^no variable "),
    ("grid", r"unexpected grid shape|unexpected dimension|cannot find the x and y|"
             r"no coordinate variable|^coordinate .* is not"),
    ("time", r"cannot tell the scan time"),
    ("future", r"ahead of the clock"),
    ("no_coverage", r"all missing"),
    ("not_dbz", r"not reflectivity in dBZ"),
    ("outlier", r"^an outlier"),
)
_COMPILED = tuple((label, re.compile(pattern)) for label, pattern in _PATTERNS)
LABELS = (*(label for label, _ in _PATTERNS), "other")


def reason_label(reason: str) -> str:
    """One of :data:`LABELS` for ``reason``."""
    for label, pattern in _COMPILED:
        if pattern.search(reason or ""):
            return label
    return "other"

"""Operator work behind ``artifact-store admin``: plain async functions, no terminal I/O.

The CLI in ``registry.cli.admin`` parses flags and draws progress; the logic lives
here so it can be tested and scripted without a terminal.
"""

from __future__ import annotations

from registry.admin.copy import CopyOutcome, CopyPlan, CopyReport, copy_blobs, plan_copy

__all__ = ["CopyOutcome", "CopyPlan", "CopyReport", "copy_blobs", "plan_copy"]

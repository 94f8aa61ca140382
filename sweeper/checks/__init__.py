"""Checks: one module per hypothesis of docs/theory.md, each a function StudyData → Verdict (see ``base``)."""

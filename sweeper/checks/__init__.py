"""Checks: one module per hypothesis of THEORY.md, each a function StudyData → Verdict (see ``base``)."""

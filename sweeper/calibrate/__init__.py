"""Calibration: run known-truth studies many times with fresh seeds and tabulate each check's verdicts against the
truth (wrong-way and decisive rates). ``cases`` defines the studies, ``run`` runs them."""

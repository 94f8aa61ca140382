"""``sweeper serve``: a live, read-only web dashboard over the results database (issue 13).

``app`` (routes, errors, access), ``pages`` (HTML, Jinja2 autoescaped) and ``api`` (JSON under ``/api``) answer
requests; ``overview`` (studies, runs), ``trajectories``, ``scaling``, ``diagnostics`` and ``verdicts`` build what
they show; ``buckets`` downsamples trajectories to the plot's width; ``cache`` keeps what was computed from a study
while it is unchanged; ``security`` guards access; ``static/`` holds the pages' scripts (Plotly from the
``plotly`` wheel).
"""

from sweeper.serve.app import create_app

__all__ = ["create_app"]

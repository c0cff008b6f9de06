"""``dabin report DIR``: a sweep's results as the paper's tables, plots and a Markdown report.

- :mod:`~dabin.report.inputs`: ``results.csv`` and ``sweep.json`` read, checked, grouped into runs.
- :mod:`~dabin.report.tables`: Table 4 (tasks × method/norm) and Table 3 (norm × domains) grids.
- :mod:`~dabin.report.stats`: means with Student-t 95% intervals.
- :mod:`~dabin.report.gates`: BIN gate tables pooled per method (Figure 2).
- :mod:`~dabin.report.plots`, :mod:`~dabin.report.csvs`, :mod:`~dabin.report.render`: PNG, CSV, Markdown.
- :mod:`~dabin.report.build`: everything made in memory first, then written; :mod:`~dabin.report.cli`.
- :mod:`~dabin.report.paper`: the paper's numbers, shown beside Office-Home results.
"""

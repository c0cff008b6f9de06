"""``dabin report DIR``: a sweep's run records as the paper's tables, plots and a Markdown report.

- :mod:`~dabin.report.inputs`: a sweep folder's run records (:mod:`dabin.record`) read and checked.
- :mod:`~dabin.report.pivot`: grouping and pivoting records, for every table.
- :mod:`~dabin.report.tables`: Table 4 (tasks × method/norm) and Table 3 (norm × domains) grids.
- :mod:`~dabin.report.stats`: means with Student-t 95% intervals; :mod:`~dabin.report.paired`: paired differences.
- :mod:`~dabin.report.selection`, :mod:`~dabin.report.optimum`: choosing without target labels.
- :mod:`~dabin.report.gates`: BIN gate tables pooled per method (Figure 2).
- :mod:`~dabin.report.sections`: one module per section of ``report.md`` (Markdown, CSV, PNG), in order.
- :mod:`~dabin.report.plots`, :mod:`~dabin.report.csvs`, :mod:`~dabin.report.markdown`: PNG, CSV, Markdown pieces.
- :mod:`~dabin.report.build`: everything made in memory first, then written; :mod:`~dabin.report.cli`.
- :mod:`~dabin.report.paper`: the paper's numbers, shown beside Office-Home results.
- :mod:`~dabin.report.published_da`: tllib's published numbers on Office-31, VisDA-2017, DomainNet and
  the digits; :mod:`~dabin.report.benchmarks` (which benchmark a sweep ran on, per-class means) and
  :mod:`~dabin.report.benchmark_rows` put them in Table 4. :mod:`~dabin.report.published_dg`: DomainBed's.
"""

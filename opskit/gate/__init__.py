"""CI performance gates: criteria (criteria.py, sources.py) judged on a run read through the run model
(opskit/runmodel/; evaluate.py), a baseline comparison (baseline.py), the answer as data (report.py) rendered as JUnit
(junit.py) and Markdown (markdown.py), and early abort for running tests (live.py). The whole use case
(read, judge, write the files) is usecase.py, which prints nothing; the commands show its report."""

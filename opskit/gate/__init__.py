"""CI performance gates: criteria (criteria.py, sources.py) judged on a results.json (results.py,
evaluate.py), a baseline comparison (baseline.py), the answer as data (report.py) rendered as JUnit
(junit.py) and Markdown (markdown.py), and early abort for running tests (live.py). Pure modules;
the command in opskit/commands/gate.py does the reading, writing and printing."""

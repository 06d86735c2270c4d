"""The one typed model of a load-test run: results.json (docs/results-schema.md) and the runner's config.

`opskit loadtest run`'s runner writes results.json (once); the gate, capacity, the load-test command and
resultsfile.newest read it through `read` (or resultsfile.load_run), which checks strictly and names the
key path of the first problem (scale's results source still takes the checked document, `parse`/`check`,
and reads the paths its thresholds name): the gate fails closed, so anything it cannot read is an
UnreadableResults, never a guess. `from_snapshot` reads the partial document a running load test hands
the AbortWatcher, where missing pieces are derived from the timeline.

results: the document's types; document: its text and schema_version; strict and lenient: access to
its keys, located or forgiving; read: the document into the types; config: the runner's input. Readers
ignore keys they do not know. This package imports nothing of opskit outside itself but jsontypes (resultsfile,
the file side, imports it), nor the writer (opskit/loadtest/results.py), nor locust.
"""

from opskit.runmodel.config import FaultSetup, RunMeta, RunnerConfig, RunnerControl
from opskit.runmodel.document import UnreadableResults, check, parse
from opskit.runmodel.read import from_snapshot, parse_results, read, read_steps, read_timeline
from opskit.runmodel.results import (
    SCHEMA_VERSION,
    Failover,
    Fault,
    Generator,
    Histograms,
    Probe,
    ProbeStepRow,
    RunInfo,
    RunResults,
    Scope,
    Second,
    Stage,
    Step,
    Worker,
)

__all__ = ["SCHEMA_VERSION", "Failover", "Fault", "FaultSetup", "Generator", "Histograms", "Probe", "ProbeStepRow",
           "RunInfo", "RunMeta", "RunResults", "RunnerConfig", "RunnerControl", "Scope", "Second", "Stage", "Step",
           "UnreadableResults", "Worker", "check", "from_snapshot", "parse", "parse_results", "read", "read_steps",
           "read_timeline"]

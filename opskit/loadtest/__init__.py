"""Load tests: scenarios, the open-model arrival generator, HDR latency statistics and results.json.

Pure cores: arrivals, recorder, aggregate, results, health, safety, scenarios, plan, failover.
CLI side (no gevent): commandflow, session, driver, progress, stallserver.
Generator side (locust + gevent, only ever inside `python -m opskit.loadtest.runner`, so the CLI
process is never monkey-patched): runner, worker, generator, openmodel, locustenv.
"""

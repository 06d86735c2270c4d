"""Load tests: scenarios, the open-model arrival generator, HDR latency statistics and results.json.

Pure cores: arrivals, recorder, aggregate, results, health, safety, scenarios, plan, request (preparing a
run), verify, failover. The run's typed model is opskit/runmodel/.
CLI side (no gevent), adapters that print nothing: host (clock, env, git, the worker process), session,
driver, stallserver. Printing (progress, tables) is the command layer's: commands/loadtestview.py.
Generator side (locust + gevent, only ever inside `python -m opskit.loadtest.runner`, so the CLI
process is never monkey-patched): runner, worker, generator, openmodel, locustenv.
"""

"""The metrics contract between a load-test run and Prometheus, which the load-test dashboard reads.

While a run is going, the runner serves these on a loopback /metrics endpoint that Prometheus scrapes as
job `opskit-loadtest` (`opskit monitor up` can add the target). Every series carries `run_id` and
`scenario`; request series add `name` (the request's name in the scenario) and `method`.
"""

LOADTEST_JOB = "opskit-loadtest"
REQUESTS = "opskit_loadtest_requests_total"  # counter: requests completed (success or failure)
FAILURES = "opskit_loadtest_failures_total"  # counter: requests that failed
RESPONSE_TIME = "opskit_loadtest_response_time_seconds"  # histogram (_bucket/_count/_sum), client side
USERS = "opskit_loadtest_users"  # gauge: running users
TARGET_RPS = "opskit_loadtest_target_rps"  # gauge: offered arrival rate (open model; 0 when closed)
DROPPED = "opskit_loadtest_dropped_total"  # counter: arrivals dropped because no user was free

# Also exported by the runner (not read by the committed dashboard; for ad-hoc queries and alerts)
SCHEDULED = "opskit_loadtest_scheduled_total"  # counter: arrivals the open-model schedule reached (sent + dropped)
IN_FLIGHT = "opskit_loadtest_in_flight"  # gauge: most requests in flight during the last complete second
LATENCY_SUMMARY = "opskit_loadtest_latency_seconds"  # summary{name,method,quantile}: HDR p50/p95/p99, run so far
AGGREGATE_LATENCY_SUMMARY = "opskit_loadtest_aggregate_latency_seconds"  # summary{quantile}: all requests
GENERATOR_CPU = "opskit_loadtest_generator_cpu_percent"  # gauge{proc}: last 1 s sample, % of one core
STEP = "opskit_loadtest_step"  # gauge{step}: index of the current step (its name in the label)
ELAPSED = "opskit_loadtest_elapsed_seconds"  # gauge: seconds since the load started
DURATION = "opskit_loadtest_planned_duration_seconds"  # gauge: the schedule's length
RUNNING = "opskit_loadtest_running"  # gauge: 1 while load is generated, 0 once the run is over (linger)

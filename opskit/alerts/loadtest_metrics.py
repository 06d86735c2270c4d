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

"""Seed 000's failure scenarios: faults injected into the local stack during a load test, and what they cost.

spec        the scenario file's `fault:` block (kind, when it starts and ends, its strength)
registry    every fault in force, cleared on every way out (the run's end, Ctrl-C, an error, a timeout)
injectors   the faults themselves: PostgreSQL stopped or refusing, Redis killed, CPU hogs, memory held,
            latency added by the stack's delay proxy
schedule    fires a fault's start and end from the run's progress (driven by loadtest.driver)
setup       puts a failure scenario together: the stack, the service on it, the injector, the objectives
writes      the acknowledged writes the load recorded, checked against the database after the run
analysis    the results' `fault` block (pure)
"""

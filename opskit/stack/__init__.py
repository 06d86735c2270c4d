"""The production-shaped stack on loopback: PostgreSQL 15, Redis 7 and their Prometheus exporters
(postgres, redis, node, process), started from Debian's packages by `opskit stack up`.

    <state-dir>/stack/state.json          ports, and pid + start time of each daemon (0600)
    <state-dir>/stack/password            the PostgreSQL and Redis password (0600)
    <state-dir>/stack/postgres/data/      the cluster (owned by the service user)
    <state-dir>/stack/redis/              redis.conf and its snapshot
    <state-dir>/stack/logs/NAME.log       each daemon's output
"""

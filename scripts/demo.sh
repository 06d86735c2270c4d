#!/usr/bin/env bash
# The main job end to end on the embedded default (`make demo`, after ./scripts/setup.sh):
# spec -> smoke load test + CI gate -> capacity probe (one worker) -> USL fit -> recommendations -> scaling
# check -> cost -> forecast -> capacity report -> alert rules and dashboards -> the closed scaling loop on a
# live service, loaded past the knee a second probe finds -> the same loop driven by a firing alert
# (Prometheus -> Alertmanager -> `playbook serve`).
# Everything it writes goes under runs/demo/ (emptied first); it leaves nothing running.
# Takes ~4 minutes on a 2-core machine. DEMO_PROBE_STEP (default 3s) sets the length of each probe step.
set -euo pipefail
cd "$(dirname "$0")/.."

OPSKIT=.venv/bin/opskit
PY=.venv/bin/python
OUT=runs/demo
LOOP_SPEC=examples/closed-loop/opskit.yaml
LOOP_LOAD=examples/closed-loop/load.yaml
PROBE_STEP=${DEMO_PROBE_STEP:-3s}
export OPSKIT_STATE_DIR="$OUT/state"   # playbook runs, locks, scaling history: kept with the demo's outputs
unset OPSKIT_SPEC                      # the demo names its spec where it matters
SVC_PID=""
LOAD_PID=""   # the alert loop's background load and receiver (section 11)
SERVE_PID=""
MONITOR_UP=""
started=$(date +%s)

stop_pid() {  # PID: TERM, wait up to 15 s, then KILL; only a pid this script started
  if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}

cleanup() {
  stop_pid "$LOAD_PID"; LOAD_PID=""
  [ -z "$MONITOR_UP" ] || $OPSKIT monitor down --state-dir "$OPSKIT_STATE_DIR" >/dev/null || true
  MONITOR_UP=""
  stop_pid "$SERVE_PID"; SERVE_PID=""
  # the closed loop's service (the load tests stop their own embedded services)
  stop_pid "$SVC_PID"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

section() { printf '\n== %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }
# `expect CODES -- CMD...`: run CMD; exit codes listed in CODES are answers (e.g. 1 = "should scale"), others fail
expect() {
  local ok=$1; shift 2
  local code=0
  "$@" || code=$?
  case " $ok " in *" $code "*) return 0 ;; esac
  die "'$*' exited $code (expected one of: $ok)"
}
# `json FILE EXPR`: a value from a JSON file (d = the document); no jq on a fresh machine
json() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
health_workers() {  # URL: the worker count the service reports on /health (a clear line when it does not answer)
  "$PY" -c '
import json, sys, urllib.request as u
try:
    direct = u.build_opener(u.ProxyHandler({}))  # loopback: never through an http_proxy from the environment
    print(json.load(direct.open(sys.argv[1] + "/health", timeout=5))["workers"])
except Exception as exc:
    sys.exit(f"demo: {sys.argv[1]}/health does not answer: {exc}")' "$1"
}

rm -rf "$OUT"
mkdir -p "$OUT"

section "1. The spec: opskit.yaml is valid"
$OPSKIT spec validate

section "2. Smoke load test on the embedded service, judged by the CI gate (JUnit + Markdown)"
$OPSKIT loadtest run smoke --out "$OUT/smoke" --gate --junit "$OUT/smoke/junit.xml" --markdown "$OUT/smoke/gate.md"

section "3. Capacity probe: one worker of the embedded service, $PROBE_STEP steps, ramp -> bisect -> confirm"
# exit 1 = no rate held the SLO (an answer); the folder's results.json holds every step and the probe block
expect "0 1" -- $OPSKIT capacity probe --step "$PROBE_STEP" --start 50 --max-rate 4000 --out "$OUT/probe"

section "4. Universal Scalability Law fit of the probe's steps, and recommendations from its knee (or its lower bound)"
expect "0 1" -- $OPSKIT capacity fit "$OUT/probe"
$OPSKIT capacity recommend --results "$OUT/probe"

section "5. Scaling thresholds against the probe's run at its knee (exit 1 = something should scale: an answer)"
expect "0 1" -- $OPSKIT scale check --source results --from "$OUT/probe"

section "6. Cost of every phase plan, and phase-1 -> phase-2"
$OPSKIT cost estimate --all
$OPSKIT cost diff phase-1 phase-2

section "7. Growth forecast: when each threshold is crossed, and what it costs then"
$OPSKIT capacity forecast --results "$OUT/probe"

section "8. Capacity report (self-contained HTML + Markdown)"
$OPSKIT capacity report --results "$OUT/probe" --out "$OUT/capacity-report.html"

section "9. Alert rules and dashboards: committed files match the spec; promtool unit tests pass"
$OPSKIT alerts render --check
$OPSKIT alerts test
$OPSKIT dashboards render --check

section "10. The closed loop: 1 worker under load -> scale check says scale up -> playbook adds a worker -> lower p95"
LOOP=$OUT/loop
mkdir -p "$LOOP"
$OPSKIT service seed --assets 2000 --companies 1 --db "$LOOP/assets.db" --output json >/dev/null
$OPSKIT service keys create --company company-1 --tier internal --db "$LOOP/assets.db" --output json >"$LOOP/key.json"
OPSKIT_API_KEYS="company-1=$(json "$LOOP/key.json" 'd["key"]')"
export OPSKIT_API_KEYS  # the load generator reads the tenant key from here (never from argv)
# --no-page-cache: every request builds its 500-row page (see examples/closed-loop/load.yaml)
$OPSKIT service run --port 0 --workers 1 --no-page-cache --db "$LOOP/assets.db" --spec "$LOOP_SPEC" \
  --ready-file "$LOOP/service.json" 2>"$LOOP/service.log" &
SVC_PID=$!
for _ in $(seq 1 600); do [ -s "$LOOP/service.json" ] && break; kill -0 "$SVC_PID" 2>/dev/null || break; sleep 0.1; done
[ -s "$LOOP/service.json" ] || die "the service did not start: $(tail -5 "$LOOP/service.log")"
URL=$(json "$LOOP/service.json" 'd["url"]')
SUP=$(json "$LOOP/service.json" 'd["pid"]')
echo "service: $URL, $(health_workers "$URL") worker(s), supervisor pid $SUP"
load() { $OPSKIT loadtest run "$LOOP_LOAD" --spec "$LOOP_SPEC" --host "$URL" "$@"; }

echo "-- capacity of 1 worker: the probe's highest rate with p95 under the 500 ms scale_up threshold"
code=0
$OPSKIT capacity probe --spec "$LOOP_SPEC" --host "$URL" --scenario "$LOOP_LOAD" --slo "p95 < 500ms" \
  --step 2s --start 10 --max-rate 2000 --out "$LOOP/probe" --output json >"$LOOP/probe.json" || code=$?
[ "$code" -le 1 ] || die "the probe exited $code"
CAP1=$(json "$LOOP/probe.json" 'round(d["max_rate_within_slo"] or d["saturation_rate"])')
echo "1 worker holds $CAP1 req/s with p95 < 500 ms ($(json "$LOOP/probe.json" 'd["limited_by"]') past it)"

# Load the one worker past that knee until the api p95 threshold is breached: 1.1x, then 1.25x, 1.4x and 1.55x
# while the check says hold (the probe may have run while other work held the CPU). Each check
# reads the run just finished; once it says scale_up, --act --yes applies the bound playbook.
DECISION=""
for FACTOR in 1.1 1.25 1.4 1.55; do
  RATE=$("$PY" -c "print(round($FACTOR * $CAP1))")
  BEFORE=$LOOP/before-$FACTOR
  echo "-- load with 1 worker: ${FACTOR}x its capacity = $RATE req/s for 10 s (open model)"
  load --rate "$RATE" --duration 10s --out "$BEFORE"
  echo "-- scale check on that run (--act --yes: a scale_up is handed to local-horizontal-scale and applied)"
  code=0
  $OPSKIT scale check --spec "$LOOP_SPEC" --source results --from "$BEFORE" --act --yes \
    --state-dir "$OPSKIT_STATE_DIR" --output json >"$LOOP/check-$FACTOR.json" || code=$?
  [ "$code" -le 1 ] || die "scale check exited $code (see $LOOP/check-$FACTOR.json)"
  DECISION=$(json "$LOOP/check-$FACTOR.json" 'd["resources"]["api"]["decision"]')
  json "$LOOP/check-$FACTOR.json" 'chr(10).join("%s %s = %.0f ms: %s (%s)" % (x["resource"], x["metric"], x["value"], x["decision"], x["reason"]) for x in d["decisions"])'
  json "$LOOP/check-$FACTOR.json" 'chr(10).join("--act: %s %s: %s, exit %s" % (h["playbook"], h["params"], h["status"], h["exit_code"]) for h in d.get("handoffs", [])) or "--act: nothing to hand over"'
  [ "$DECISION" = scale_up ] && break
done
[ "$DECISION" = scale_up ] || die "one worker kept its p95 under the threshold up to $RATE req/s"
P95_BEFORE=$(json "$BEFORE/results.json" 'd["aggregate"]["latency_ms"]["p95"]')
WORKERS=$(health_workers "$URL")
[ "$WORKERS" = 2 ] || die "the service has $WORKERS worker(s) after the playbook, expected 2"
echo "service: $WORKERS workers now (/health)"
$OPSKIT playbook runs

echo "-- the same load with 2 workers"
load --rate "$RATE" --duration 10s --out "$LOOP/after"
P95_AFTER=$(json "$LOOP/after/results.json" 'd["aggregate"]["latency_ms"]["p95"]')

echo
printf 'closed loop: %s req/s, p95 with 1 worker %.1f ms (threshold 500 ms) -> with 2 workers %.1f ms\n' \
  "$RATE" "$P95_BEFORE" "$P95_AFTER"
"$PY" -c "import sys; sys.exit(0 if $P95_AFTER < $P95_BEFORE else 1)" \
  || die "p95 did not drop after scaling ($P95_BEFORE -> $P95_AFTER ms)"

section "11. Alerts that act: the p95 rule fires in Prometheus -> Alertmanager -> playbook serve -> a second worker -> resolved"
ALOOP=$OUT/alert-loop
mkdir -p "$ALOOP"
$OPSKIT playbook apply local-horizontal-scale -p workers=1 -p "reason=demo: back to one worker for the alert loop" \
  -p target="$URL" --yes --no-dry-run >"$ALOOP/reset.log"
$OPSKIT alerts render --spec "$LOOP_SPEC" --out "$ALOOP/alerts" >/dev/null
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
SERVE_PORT=$(free_port); METRICS_PORT=$(free_port)
$OPSKIT playbook serve --port "$SERVE_PORT" --approve auto --spec "$LOOP_SPEC" --service "$URL" \
  --state-dir "$OPSKIT_STATE_DIR" >"$ALOOP/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 1 300); do grep -q listening "$ALOOP/serve.log" 2>/dev/null && break; sleep 0.1; done
grep -q listening "$ALOOP/serve.log" || die "playbook serve did not start: $(tail -3 "$ALOOP/serve.log")"
MONITOR_UP=1
$OPSKIT monitor up --spec "$LOOP_SPEC" --port 0 --target "$URL" --loadtest "http://127.0.0.1:$METRICS_PORT" \
  --rules "$PWD/$ALOOP/alerts/*.rules.yml" --alertmanager --alertmanager-port 0 \
  --receiver "http://127.0.0.1:$SERVE_PORT/alerts" --state-dir "$OPSKIT_STATE_DIR"
ARATE=$("$PY" -c "print(round(1.6 * $CAP1))")
echo "-- load on 1 worker: a ramp to $ARATE req/s over 30 s (examples/closed-loop/alert-load.yaml); waiting for the alert to act, then resolve"
$OPSKIT loadtest run examples/closed-loop/alert-load.yaml --spec "$LOOP_SPEC" --host "$URL" --rate "$ARATE" --duration 30s --metrics-port "$METRICS_PORT" --out "$ALOOP/load" >"$ALOOP/load.log" 2>&1 &
LOAD_PID=$!
"$PY" - "$OPSKIT_STATE_DIR/receiver" <<'PYEOF' || die "the alert loop did not complete (see $ALOOP/serve.log)"
import json, pathlib, sys, time
root = pathlib.Path(sys.argv[1])
def journal():
    p = root / "journal.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []
start, deadline = time.monotonic(), time.monotonic() + 110
while time.monotonic() < deadline:
    runs = [e for e in journal() if e["action"] == "run"]
    done = [json.loads(p.read_text()) for p in (root / "requests").glob("*.json")] if runs else []
    done = [r for r in done if r["state"] == "finished"]
    resolved = [e for e in journal() if e["action"] == "resolved" and done and e["run_id"] == done[0]["run_id"]]
    if resolved:
        r = done[0]
        print(f"{r['alert']['name']} (fingerprint {r['alert']['fingerprint']}): {r['playbook']} "
              f"{r['params']} approved {r['approval']['mode']} -> {r['outcome']}; resolved "
              f"{time.monotonic() - start:.0f}s after the load started")
        sys.exit(0 if r["outcome"] == "succeeded" else 1)
    time.sleep(0.5)
sys.exit(1)
PYEOF
echo "service: $(health_workers "$URL") workers now (/health)"
cleanup; SVC_PID=""

section "Done in $(( $(date +%s) - started ))s. Outputs under $OUT/:"
cat <<EOF
  smoke/                 smoke run: results.json, Locust CSV/HTML; junit.xml and gate.md from the gate
  probe/                 capacity probe: results.json (probe block, one step row per rate), steps/*/ each run
  capacity-report.html   capacity report (and capacity-report.md)
  loop/probe/            one worker's knee on the loop's workload (sets the loop's rate)
  loop/before-*/, after/ the same load on 1 and on 2 workers; loop/check-*.json: the scale checks
  state/runs/*/journal.jsonl   the playbook runs' journals (opskit playbook runs --state-dir $OUT/state)
  alert-loop/            rendered rules, serve.log; state/receiver/: the alerts' requests and journal
EOF

# ---- 11. production-shaped: PostgreSQL + Redis behind the service, all eight threshold rows live -------
# Appended after the embedded story: `opskit stack up` (PostgreSQL 15, Redis 7 and four exporters on
# 127.0.0.1, state under $OUT/prod), the service on PostgreSQL with the Redis cache, a Prometheus started by
# `monitor up` scraping the service and the exporters, a short load, then `scale check --source prometheus`
# must read all 8 rows of seed 001 (none no_data). prod_cleanup stops all of it on every path.
PROD=$OUT/prod
PROD_STATE=$PWD/$PROD/state            # the stack's own user must reach it: not under a private dir
PROD_SVC_PID=""
STACK_UP=""
MONITOR_UP=""
prod_cleanup() {
  if [ -n "$PROD_SVC_PID" ] && kill -0 "$PROD_SVC_PID" 2>/dev/null; then
    kill -TERM "$PROD_SVC_PID" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$PROD_SVC_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PROD_SVC_PID" 2>/dev/null || true
    wait "$PROD_SVC_PID" 2>/dev/null || true
  fi
  PROD_SVC_PID=""
  if [ -n "$MONITOR_UP" ]; then $OPSKIT monitor down --state-dir "$PROD_STATE" >/dev/null 2>&1 || true; fi
  MONITOR_UP=""
  if [ -n "$STACK_UP" ]; then $OPSKIT stack down --state-dir "$PROD_STATE" >/dev/null 2>&1 || true; fi
  STACK_UP=""
}
trap 'cleanup; prod_cleanup' EXIT
prod_started=$(date +%s)

section "12. Production-shaped: the service on PostgreSQL + Redis (opskit stack), all 8 threshold rows live"
mkdir -p "$PROD_STATE"
chmod 0711 "$OUT" "$PROD" "$PROD_STATE"
STACK_UP=1   # set first: `stack down` after a half-done `up` is harmless, a forgotten daemon is not
$OPSKIT stack up --state-dir "$PROD_STATE" --fresh --output json >"$PROD/stack.json"
PG_URL=$(json "$PROD/stack.json" 'd["postgresql"]')
REDIS_URL=$(json "$PROD/stack.json" 'd["redis"]')
PGPASSWORD=$(cat "$PROD_STATE/stack/password")
REDIS_PASSWORD=$PGPASSWORD               # the stack gives PostgreSQL and Redis one generated password
export PGPASSWORD REDIS_PASSWORD         # libpq and the service read them here, never from argv
echo "stack: PostgreSQL $PG_URL, Redis $REDIS_URL, exporters $(json "$PROD/stack.json" '" ".join(sorted(d["exporters"]))')"

$OPSKIT service seed --assets 20000 --companies 1 --db "$PG_URL" --output json >/dev/null
$OPSKIT service keys create --company company-1 --tier internal --db "$PG_URL" --output json >"$PROD/key.json"
OPSKIT_API_KEYS="company-1=$(json "$PROD/key.json" 'd["key"]')"
export OPSKIT_API_KEYS
# --no-page-cache: list pages come from Redis (shared by both workers), not from each worker's memory
$OPSKIT service run --port 0 --workers 2 --no-page-cache --db "$PG_URL" --cache "$REDIS_URL" \
  --ready-file "$PROD/service.json" 2>"$PROD/service.log" &
PROD_SVC_PID=$!
for _ in $(seq 1 600); do [ -s "$PROD/service.json" ] && break; kill -0 "$PROD_SVC_PID" 2>/dev/null || break; sleep 0.1; done
[ -s "$PROD/service.json" ] || die "the service did not start: $(tail -5 "$PROD/service.log")"
PROD_URL=$(json "$PROD/service.json" 'd["url"]')
echo "service: $PROD_URL, $(health_workers "$PROD_URL") workers, store postgresql, cache redis"

MONITOR_UP=1
$OPSKIT monitor up --port 0 --scrape-interval 1s --target "$PROD_URL" --state-dir "$PROD_STATE" \
  --output json >"$PROD/monitor.json"
PROM=$(json "$PROD/monitor.json" 'd["url"]')
echo "prometheus: $PROM (the service and the stack's postgres, redis, node and process exporters, every 1 s)"

echo "-- load: 150 req/s of GET /api/assets?limit=500 for 15 s"
$OPSKIT loadtest run "$LOOP_LOAD" --spec "$LOOP_SPEC" --host "$PROD_URL" --rate 150 --duration 15s \
  --out "$PROD/load" >/dev/null
json "$PROD/load/results.json" '"%d requests, %.0f req/s, p95 %.1f ms, %d failed" % (d["aggregate"]["requests"], d["aggregate"]["rps"], d["aggregate"]["latency_ms"]["p95"], d["aggregate"]["failures"])'

echo "-- scale check --source prometheus: every row of seed 001 read live (retried while the 1m rates fill)"
ROWS=""
for _ in $(seq 1 30); do
  code=0
  $OPSKIT scale check --spec opskit.yaml --source prometheus --prometheus "$PROM" --state-dir "$PROD_STATE" \
    --output json >"$PROD/check.json" 2>"$PROD/check.log" || code=$?
  if [ "$code" -le 1 ]; then
    ROWS=$(json "$PROD/check.json" 'sum(1 for x in d["decisions"] if x["mode"] != "capacity" and x["decision"] != "no_data")')
    [ "$ROWS" = 8 ] && break
  fi
  sleep 1
done
[ "$ROWS" = 8 ] || die "scale check read ${ROWS:-0}/8 rows live (see $PROD/check.json, $PROD/check.log)"
json "$PROD/check.json" 'chr(10).join("%-8s %-20s %10.2f  %s" % (x["resource"], x["metric"], x["value"], x["decision"]) for x in d["decisions"])'
echo "8/8 threshold rows live"
prod_cleanup
echo "stack, service and Prometheus stopped"
section "Production-shaped section done in $(( $(date +%s) - prod_started ))s (whole demo $(( $(date +%s) - started ))s). Outputs under $PROD/"

#!/usr/bin/env bash
# Sets up everything opskit needs on a fresh Debian machine (run as root): the system binaries
# the tools drive for real (prometheus + promtool, amtool, wrk, chromium for the report check)
# and a virtualenv with opskit and its test tools. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# `opskit stack up`: PostgreSQL 15, Redis 7 and their exporters (stress-ng: the failure scenarios' CPU and
# memory hogs, docs/guide/faults.md)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
for exporter in postgres redis node process; do
  command -v "prometheus-$exporter-exporter" >/dev/null 2>&1 || need+=("prometheus-$exporter-exporter")
done
command -v stress-ng >/dev/null 2>&1 || need+=(stress-ng)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: need root to install: ${need[*]}" >&2; exit 2
  fi
  echo "setup: apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: no node-exporter & co. started as services
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian's packages may try to start the daemons; opskit runs its own, on demand, on loopback
  for svc in prometheus prometheus-alertmanager; do
    pkill -x "${svc#prometheus-}" 2>/dev/null || true
  done
  # the same for the stack's packages `opskit stack up` runs itself (as the opskit user, on loopback):
  # stop and disable the system services of the packages installed just now, and only those
  for pkg in postgresql-15 redis-server prometheus-postgres-exporter prometheus-redis-exporter \
             prometheus-node-exporter prometheus-process-exporter; do
    case " ${need[*]} " in *" $pkg "*) ;; *) continue ;; esac
    svc=${pkg%-15}
    invoke-rc.d "$svc" stop >/dev/null 2>&1 || true
    if [ -d /run/systemd/system ]; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
  done
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.opskit-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi
echo "setup: ok ($(.venv/bin/opskit --version))"

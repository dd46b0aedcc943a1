#!/usr/bin/env bash
# Installs what the PostgreSQL and Ray tests need on a CI machine (Debian, root), after `make setup`:
#   - the PostgreSQL server binaries (initdb, pg_ctl) from Debian, for tests/test_db_postgres.py,
#     which starts its own throwaway server on 127.0.0.1 (the packaged cluster is not used);
#   - the psycopg driver, if requirements.txt did not already bring it;
#   - Ray (the optional `ray` extra) into .venv, for tests/test_ray_backend.py (SEAM_CI_RAY=0 skips it).
# Each step warns instead of failing: the tests then skip with the reason.
set -uo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
RAY_VERSION=2.60.0
PSYCOPG_VERSION=3.3.9

have_pg() { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }

if ! have_pg; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null) \
      || echo "warning: could not install postgresql; the PostgreSQL tests will be skipped"
  else
    echo "warning: no PostgreSQL server binaries and no root apt-get to install them; the PostgreSQL tests will be skipped"
  fi
fi

if [ ! -x "$PY" ]; then
  echo "warning: $PY not found (run make setup first); not installing psycopg or ray"
  exit 0
fi

if ! "$PY" -c "import psycopg" >/dev/null 2>&1; then
  "$PY" -m pip install --disable-pip-version-check -q "psycopg[binary]==$PSYCOPG_VERSION" \
    || echo "warning: could not install psycopg; the PostgreSQL tests will be skipped"
fi

if [ "${SEAM_CI_RAY:-1}" != 0 ] && ! "$PY" -c "import ray" >/dev/null 2>&1; then
  "$PY" -m pip install --disable-pip-version-check -q "ray==$RAY_VERSION" \
    || echo "warning: could not install ray; the Ray tests will be skipped"
fi

# The Label Studio SDK, so the export check in tests/test_exports_sdk.py runs (it pulls in opencv, hence not
# in requirements.txt; the test skips without it).
if ! "$PY" -c "import label_studio_sdk" >/dev/null 2>&1; then
  "$PY" -m pip install --disable-pip-version-check -q "label-studio-sdk==1.0.20" \
    || echo "warning: could not install label-studio-sdk; the Label Studio export test will be skipped"
fi

"$PY" -m pip check


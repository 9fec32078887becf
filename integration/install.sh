#!/usr/bin/env bash
# Installs what the integration tests need, and nothing when it is all there:
#   - PostgreSQL 15 server + client, MariaDB server + client, sysbench,
#     pgbouncer, openssl (Debian packages; the system services are not started);
#   - a project virtualenv .venv with psycopg 3 and PyMySQL.
# Safe to run again and again; it only calls apt-get when something is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

missing=()
[ -x /usr/lib/postgresql/15/bin/postgres ] && [ -x /usr/lib/postgresql/15/bin/initdb ] \
    || missing+=(postgresql-15)
have psql || missing+=(postgresql-client-15)
have mariadbd || have mysqld || missing+=(mariadb-server)
have mariadb || missing+=(mariadb-client)
have sysbench || missing+=(sysbench)
have pgbouncer || missing+=(pgbouncer)
have openssl || missing+=(openssl) # certificates for the TLS tests
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)

if [ "${#missing[@]}" -gt 0 ]; then
    echo "install.sh: installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "install.sh: need root to install packages (run as root or install: ${missing[*]})" >&2
        exit 1
    fi
    # Keep Debian from starting the system services (MariaDB, PostgreSQL,
    # pgbouncer) while installing: the tests start their own servers.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# PostgreSQL 15 server binaries are what the local cluster provider runs.
pg_bin=/usr/lib/postgresql/15/bin
if ! "$pg_bin/postgres" --version | grep -q ' 15\.'; then
    echo "install.sh: PostgreSQL 15 server binaries not found in $pg_bin" >&2
    exit 1
fi

# The Python clients used by differential and load scripts.
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import psycopg, pymysql' >/dev/null 2>&1; then
    .venv/bin/pip install --quiet --disable-pip-version-check 'psycopg[binary]>=3.1' 'PyMySQL>=1.1'
fi

echo "install.sh: ok ($("$pg_bin/postgres" --version), $(mariadbd --version 2>/dev/null \
    || /usr/sbin/mariadbd --version | head -1 | cut -c1-60), .venv ready)"

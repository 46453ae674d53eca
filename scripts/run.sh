#!/usr/bin/env bash
# Runs jidgate with its embedded defaults: SQLite in var/, a Prosody started
# from config/prosody.cfg.lua on 127.0.0.1:5222 (data in var/prosody), the
# register API on http://127.0.0.1:8080 and the token service on
# 127.0.0.1:8091. The first run writes var/local.toml with fresh secrets and
# three demo apps. Installs Prosody from Debian if it is missing.
#
# scripts/run.sh --postgres: two jidgate instances on one local PostgreSQL
# (started from var/postgres, or /var/tmp/jidgate-postgres when run as root,
# on 127.0.0.1:5433; installed from Debian if missing) and the same Prosody:
# instance a on http://127.0.0.1:8080 and token service 127.0.0.1:8091,
# instance b on http://127.0.0.1:8081 and 127.0.0.1:8092.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
postgres=false
case "${1:-}" in
    --postgres) postgres=true ;;
    "") ;;
    *) echo "usage: scripts/run.sh [--postgres]" >&2; exit 2 ;;
esac
need prosody prosody
if $postgres; then
    need pg_lsclusters postgresql
fi
cargo build --release --locked --bin jidgate
jidgate=target/release/jidgate
mkdir -p var/prosody
chmod 700 var
if [ ! -f var/local.toml ]; then
    umask 077
    cat > var/local.toml <<TOML
# Written by scripts/run.sh on first run: secrets for this machine only.
[xmpp]
security = "plaintext"    # the local Prosody listens on 127.0.0.1 only
admin_password = "$($jidgate gen-key)"

[secrets]
jid_key = "$($jidgate gen-key)"

[[apps]]
app_id = "demo-app"
secret = "$($jidgate gen-key)"
kind = "app"

[[apps]]
app_id = "demo-device"
secret = "$($jidgate gen-key)"
kind = "device"

[[apps]]
app_id = "demo-service"
secret = "$($jidgate gen-key)"
kind = "service"
TOML
    echo "wrote var/local.toml"
fi
admin_password=$(sed -n 's/^admin_password = "\(.*\)".*/\1/p' var/local.toml)
export JIDGATE_PROSODY_DIR="$PWD/var/prosody" JIDGATE_PROSODY_PORT=5222
if (exec 3<>/dev/tcp/127.0.0.1/5222) 2>/dev/null; then
    echo "127.0.0.1:5222 is taken: stop the XMPP server listening there first" >&2
    exit 1
fi
prosodyctl --config config/prosody.cfg.lua register admin localhost "$admin_password"
prosody -F --config config/prosody.cfg.lua &
prosody_pid=$!
trap 'kill $prosody_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/5222) 2>/dev/null && break
    sleep 0.1
done
if ! $postgres; then
    exec "$jidgate" --config var/local.toml serve
fi

# PostgreSQL, as the user postgres when we are root (it refuses root).
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg=()
if [ "$(id -u)" = 0 ]; then
    pgdata=/var/tmp/jidgate-postgres
    as_pg=(runuser -u postgres --)
    mkdir -p "$pgdata" && chown postgres: "$pgdata" && chmod 700 "$pgdata"
else
    pgdata="$PWD/var/postgres"
    mkdir -p "$pgdata" && chmod 700 "$pgdata"
fi
if [ ! -f "$pgdata/PG_VERSION" ]; then
    "${as_pg[@]}" "$pgbin/initdb" -U postgres --auth=trust -E UTF8 --locale=C -D "$pgdata" >/dev/null
fi
if (exec 3<>/dev/tcp/127.0.0.1/5433) 2>/dev/null; then
    echo "127.0.0.1:5433 is taken: stop the server listening there first" >&2
    exit 1
fi
"${as_pg[@]}" "$pgbin/postgres" -D "$pgdata" -h 127.0.0.1 -p 5433 -k "$pgdata" \
    >"$pgdata/../jidgate-postgres.log" 2>&1 &
pg_pid=$!
trap 'kill $prosody_pid $pg_pid ${a_pid:-} ${b_pid:-} 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
for _ in $(seq 100); do
    "$pgbin/psql" -X -q -h 127.0.0.1 -p 5433 -U postgres -d postgres -c 'select 1' >/dev/null 2>&1 && break
    sleep 0.1
done
"$pgbin/psql" -X -q -h 127.0.0.1 -p 5433 -U postgres -d postgres -tc \
    "select 1 from pg_database where datname = 'jidgate'" | grep -q 1 ||
    "$pgbin/psql" -X -q -h 127.0.0.1 -p 5433 -U postgres -d postgres -c 'create database jidgate'
export JIDGATE__DATABASE__URL="postgres://postgres@127.0.0.1:5433/jidgate"
export JIDGATE__INSTANCE__COUNT=2
JIDGATE__INSTANCE__ID=a JIDGATE__HTTP__LISTEN=127.0.0.1:8080 \
    JIDGATE__TOKEN_SERVICE__LISTEN=127.0.0.1:8091 \
    "$jidgate" --config var/local.toml serve &
a_pid=$!
JIDGATE__INSTANCE__ID=b JIDGATE__HTTP__LISTEN=127.0.0.1:8081 \
    JIDGATE__TOKEN_SERVICE__LISTEN=127.0.0.1:8092 \
    "$jidgate" --config var/local.toml serve &
b_pid=$!
echo "instances a (http://127.0.0.1:8080, token service :8091) and b (:8081, :8092) on PostgreSQL 127.0.0.1:5433/jidgate"
wait -n $a_pid $b_pid

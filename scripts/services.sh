#!/usr/bin/env bash
# Starts the real servers the integration tests use, idempotently, and waits
# until each is ready:
#   SQS       fauxqs 1.9.2 (npm) on 127.0.0.1:${JUNCTION_FAUXQS_PORT:-4566}
#   NATS      nats-server with JetStream on 127.0.0.1:4222
#   RabbitMQ  rabbitmq-server on 127.0.0.1:5672
# and installs (without starting) nats-server v2.15.2, MinIO and
# serverless-offline for the tests that start their own, and chromium with
# playwright-core for the console's browser test. The two Go builds
# (nats-server, MinIO) run in the background while the rest installs.
# Installed tools go to .cache/ (ignored by git). What this script starts is
# recorded in .cache/pids; `scripts/services.sh stop` stops those only.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="$PWD/.cache"
mkdir -p "$CACHE/logs"
PIDS="$CACHE/pids"
FAUXQS_VERSION=1.9.2
FAUXQS_PORT="${JUNCTION_FAUXQS_PORT:-4566}"

log() { echo "services: $*"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name seconds command...
  local name=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then log "$name ready"; return 0; fi
    sleep 0.1
  done
  log "$name not ready after ${secs}s"; return 1
}

if [ "${1:-}" = "stop" ]; then
  [ -f "$PIDS" ] || exit 0
  while read -r name pid; do
    if kill "$pid" 2>/dev/null; then log "stopped $name ($pid)"; fi
  done < "$PIDS"
  rm -f "$PIDS"
  exit 0
fi

# --- SQS: fauxqs ---------------------------------------------------------
if curl -sf "http://127.0.0.1:$FAUXQS_PORT/health" >/dev/null 2>&1; then
  log "fauxqs already running on $FAUXQS_PORT"
else
  if [ ! -f "$CACHE/fauxqs/node_modules/fauxqs/dist/cli.js" ]; then
    command -v npm >/dev/null || { log "npm is missing: apt-get install -y nodejs npm"; exit 1; }
    log "installing fauxqs@$FAUXQS_VERSION"
    mkdir -p "$CACHE/fauxqs"
    (cd "$CACHE/fauxqs" && [ -f package.json ] || echo '{"private":true}' > package.json)
    (cd "$CACHE/fauxqs" && npm install --no-audit --no-fund --silent "fauxqs@$FAUXQS_VERSION")
  fi
  log "starting fauxqs on $FAUXQS_PORT"
  FAUXQS_PORT=$FAUXQS_PORT nohup node "$CACHE/fauxqs/node_modules/fauxqs/dist/cli.js" \
    > "$CACHE/logs/fauxqs.log" 2>&1 &
  echo "fauxqs $!" >> "$PIDS"
  wait_for fauxqs 30 curl -sf "http://127.0.0.1:$FAUXQS_PORT/health"
fi

# --- NATS with JetStream ----------------------------------------------------
if port_open 4222; then
  log "nats already running on 4222"
else
  if ! command -v nats-server >/dev/null; then
    log "installing nats-server"
    apt-get update -qq && apt-get install -y -qq nats-server >/dev/null
  fi
  mkdir -p "$CACHE/nats"
  log "starting nats-server on 4222"
  nohup nats-server -a 127.0.0.1 -p 4222 -js -sd "$CACHE/nats" > "$CACHE/logs/nats.log" 2>&1 &
  echo "nats $!" >> "$PIDS"
  wait_for nats 20 port_open 4222
fi

# --- nats-server v2.15.2 for the replica tests: install only ---------------------
# The e2e replica tests (e2e/cluster_test.go) start their own 3-node JetStream
# cluster on free loopback ports; they need a current nats-server (Debian's is
# 2.9), pinned here. Installed into .cache/bin; tests find it there or at
# $JUNCTION_NATS_SERVER.
NATS_SERVER_VERSION=v2.15.2
nats_version() { "$CACHE/bin/nats-server" --version 2>/dev/null | awk '{print $2}'; }
NATS_SERVER_JOB=
if [ -x "$CACHE/bin/nats-server" ] && [ "$(nats_version)" = "$NATS_SERVER_VERSION" ]; then
  log "nats-server $NATS_SERVER_VERSION already installed"
else
  command -v go >/dev/null || { log "go is missing: needed to install nats-server"; exit 1; }
  log "installing nats-server@$NATS_SERVER_VERSION in the background (about 20 s)"
  mkdir -p "$CACHE/bin"
  GOBIN="$CACHE/bin" go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION" \
    > "$CACHE/logs/nats-server-install.log" 2>&1 &
  NATS_SERVER_JOB=$!
fi

# --- RabbitMQ -----------------------------------------------------------------
if port_open 5672; then
  log "rabbitmq already running on 5672"
else
  if ! command -v rabbitmq-server >/dev/null; then
    log "installing rabbitmq-server"
    apt-get update -qq && apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  log "starting rabbitmq-server"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_for rabbitmq 90 port_open 5672
fi

# --- MinIO (S3 with bucket notifications): install only ------------------------
# The s3 source's tests start their own MinIO per test (free loopback ports,
# a temporary data directory, webhook targets pointing at that test's
# junction), so nothing long-lived is started here. The binary goes to
# .cache/bin/minio; tests find it there, or on PATH, or at $JUNCTION_MINIO.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MINIO_JOB=
if [ -x "$CACHE/bin/minio" ]; then
  log "minio already installed"
else
  command -v go >/dev/null || { log "go is missing: needed to install minio"; exit 1; }
  # The longest install (a build from source, 3-6 minutes on 2 cores): it
  # runs in the background while the rest installs; the script waits for it
  # at the end.
  log "installing minio@$MINIO_VERSION in the background (3-6 minutes)"
  mkdir -p "$CACHE/bin"
  GOBIN="$CACHE/bin" go install "github.com/minio/minio@$MINIO_VERSION" \
    > "$CACHE/logs/minio-install.log" 2>&1 &
  MINIO_JOB=$!
fi

# --- Lambda: serverless-offline (install only) ----------------------------------
# The lambda sink's tests and the e2e tests start their own serverless-offline
# (`serverless offline start` in examples/webhook-function, on free loopback
# ports given with --lambdaPort/--httpPort/--websocketPort), so nothing
# long-lived is started here. Installed into .cache/sls; tests find the CLI at
# .cache/sls/node_modules/.bin/serverless, or at $JUNCTION_SERVERLESS.
SLS_VERSION=3.40.0
SLS_OFFLINE_VERSION=13.10.1
sls_version() { # package -> installed version, or nothing
  node -p "require('$CACHE/sls/node_modules/$1/package.json').version" 2>/dev/null || true
}
if [ "$(sls_version serverless)" = "$SLS_VERSION" ] && [ "$(sls_version serverless-offline)" = "$SLS_OFFLINE_VERSION" ]; then
  log "serverless-offline already installed"
else
  command -v npm >/dev/null || { log "npm is missing: apt-get install -y nodejs npm"; exit 1; }
  log "installing serverless@$SLS_VERSION serverless-offline@$SLS_OFFLINE_VERSION (about 30-70 s)"
  mkdir -p "$CACHE/sls"
  (cd "$CACHE/sls" && [ -f package.json ] || echo '{"private":true}' > package.json)
  (cd "$CACHE/sls" && npm install --no-audit --no-fund --silent \
    "serverless@$SLS_VERSION" "serverless-offline@$SLS_OFFLINE_VERSION")
  log "serverless-offline installed in $CACHE/sls"
fi

# --- Chromium and playwright-core for the console's browser test -------------
# e2e/console_test.go drives Debian's chromium with playwright-core
# (e2e/console/package.json, pinned in its package-lock.json); no tool
# downloads a browser of its own.
if [ -x /usr/bin/chromium ]; then
  log "chromium already installed"
else
  log "installing chromium (Debian, about 1 minute)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ -f e2e/console/node_modules/playwright-core/package.json ] &&
   [ "$(node -p "require('./e2e/console/node_modules/playwright-core/package.json').version")" = "$(node -p "require('./e2e/console/package.json').dependencies['playwright-core']")" ]; then
  log "playwright-core already installed"
else
  command -v npm >/dev/null || { log "npm is missing: apt-get install -y nodejs npm"; exit 1; }
  log "installing playwright-core into e2e/console"
  (cd e2e/console && npm ci --no-audit --no-fund --silent)
fi

# --- The CloudEvents JavaScript SDK for e2e/cejs_test.go ----------------------
# Pinned by e2e/cejs/package-lock.json (cloudevents 10.0.0).
if [ -f e2e/cejs/node_modules/cloudevents/package.json ]; then
  log "the CloudEvents JavaScript SDK already installed"
else
  command -v npm >/dev/null || { log "npm is missing: apt-get install -y nodejs npm"; exit 1; }
  log "installing the CloudEvents JavaScript SDK (e2e/cejs)"
  (cd e2e/cejs && npm ci --no-audit --no-fund --silent)
fi

# --- wait for the background installs ---------------------------------------
if [ -n "$NATS_SERVER_JOB" ]; then
  wait "$NATS_SERVER_JOB" || { log "nats-server install failed:"; tail -20 "$CACHE/logs/nats-server-install.log"; exit 1; }
  log "nats-server installed in $CACHE/bin"
fi
if [ -n "$MINIO_JOB" ]; then
  log "waiting for the minio build"
  wait "$MINIO_JOB" || { log "minio install failed:"; tail -20 "$CACHE/logs/minio-install.log"; exit 1; }
  log "minio installed in $CACHE/bin"
fi

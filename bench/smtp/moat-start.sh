#!/bin/sh
# Starts moatd for the shared bench harness: the same checks as the peers
# (bad senders, valid recipients for the relay domain, no open relay, hang
# up after BENCH_MAX_UNRECOGNIZED errors), forwarding to the harness sink.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUN=${BENCH_RUN_DIR:?}
level=warn
[ "${BENCH_LOGLEVEL:-quiet}" = info ] && level=info
cat > "$RUN/moat.conf" <<CONF
[server]
listen = 127.0.0.1:${BENCH_PORT:?}
hostname = moat.bench.test
var_dir = $RUN/var
local_domains = ${BENCH_DOMAIN:-example.com}
log = stderr
log_level = $level
json_log = off
max_errors = ${BENCH_MAX_UNRECOGNIZED:-4}
max_connections = ${BENCH_MAX_CONN:-6000}
max_per_ip = ${BENCH_MAX_CONN:-6000}

[pipeline]
filters = relay badmailfrom recipients

[badmailfrom]
file = ${BENCH_BAD_SENDERS:?}

[recipients]
users = ${BENCH_VALID_RCPTS:?}

[delivery]
method = smtp
route = ${BENCH_SINK_HOST:?}:${BENCH_SINK_PORT:?}
starttls = no
CONF
exec "$ROOT/build/moatd" -c "$RUN/moat.conf"

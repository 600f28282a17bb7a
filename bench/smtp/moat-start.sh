#!/bin/sh
# Starts moatd for the shared bench harness: the same checks as the peers
# (bad senders, valid recipients for the relay domain, no open relay, hang
# up after BENCH_MAX_UNRECOGNIZED errors), forwarding to the harness sink.
# No pre-greeting test (pregreet_wait = 0): the peers greet at once.
#
# MOAT_BENCH_FILTERS replaces the [pipeline] filters and MOAT_BENCH_EXTRA
# names a file of further sections appended to the config (moat-dns-start.sh
# uses both; moat-state-start.sh also MOAT_BENCH_PASS). With --loglevel info (BENCH_LOGLEVEL=info) the human log is
# at info and the JSON log goes to $BENCH_RUN_DIR/json.log.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUN=${BENCH_RUN_DIR:?}
level=warn json=off
if [ "${BENCH_LOGLEVEL:-quiet}" = info ]; then
	level=info json=$RUN/json.log
fi
cat > "$RUN/moat.conf" <<CONF
[server]
listen = 127.0.0.1:${BENCH_PORT:?}
hostname = moat.bench.test
var_dir = $RUN/var
local_domains = ${BENCH_DOMAIN:-example.com}
log = stderr
log_level = $level
json_log = $json
max_errors = ${BENCH_MAX_UNRECOGNIZED:-4}
max_connections = ${BENCH_MAX_CONN:-6000}
max_per_ip = ${BENCH_MAX_CONN:-6000}
pregreet_wait = 0

[pipeline]
filters = ${MOAT_BENCH_FILTERS:-relay badmailfrom recipients}

[badmailfrom]
file = ${BENCH_BAD_SENDERS:?}

[recipients]
users = ${BENCH_VALID_RCPTS:?}

[delivery]
method = smtp
route = ${BENCH_SINK_HOST:?}:${BENCH_SINK_PORT:?}
starttls = no
CONF
[ -n "${MOAT_BENCH_EXTRA:-}" ] && cat "$MOAT_BENCH_EXTRA" >> "$RUN/moat.conf"
# MOAT_BENCH_PASS: a greylist pool passed before the start (moat-state).
if [ -n "${MOAT_BENCH_PASS:-}" ]; then
	"$ROOT/build/moatctl" -c "$RUN/moat.conf" greylist pass \
	    "$MOAT_BENCH_PASS" >/dev/null
fi
exec "$ROOT/build/moatd" -c "$RUN/moat.conf"

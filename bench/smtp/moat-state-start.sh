#!/bin/sh
# Starts moatd for the shared bench harness with the defenses that keep
# state on: moat-start.sh's checks plus ratelimit (every inbound limit
# counted, set far above the load so none refuses), greylist (selective,
# the bench client's /24 passed beforehand with moatctl, so every RCPT
# reads the pass and refreshes it through the store's writer thread) and
# karma (every recipient's outcome counted in the shared windows; the
# load is clean, so nothing is blocked). Measured against `moat` in the
# same run: the cost of the state (issue 11 asks under 20 %).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RUN=${BENCH_RUN_DIR:?}
cat > "$RUN/moat-state.conf" <<CONF

[ratelimit]
in_connections = 1000000/1h
in_messages = 1000000/1h
in_recipients = 1000000/1h

[greylist]
delay = 300

[karma]
attempts = 10
CONF
MOAT_BENCH_FILTERS="relay ratelimit badmailfrom recipients greylist karma" \
MOAT_BENCH_EXTRA="$RUN/moat-state.conf" \
MOAT_BENCH_PASS="net:127.0.0.0/24" \
    exec "$HERE/moat-start.sh"

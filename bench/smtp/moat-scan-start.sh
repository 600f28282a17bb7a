#!/bin/sh
# Starts moatd for the shared bench harness with the content scanners, the
# peer of the harness's haraka-scan (Haraka's clamd and spamassassin
# plugins): moat-start.sh's checks plus spamassassin and clamav against the
# benchmark's spamd and clamd (bench.py --scan starts ../scan and passes
# BENCH_SPAMD and BENCH_CLAMD, TCP on 127.0.0.1 as haraka-scan uses them),
# then score. As haraka-scan: a virus is refused (554), so is a clamd error
# (fail = defer: 451), and a message scoring 10 or more is refused
# (spamassassin.ini reject_threshold=10); from 5 (spamd's own threshold) it
# is tagged. Both scans of a message run at the same time.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=${BENCH_RUN_DIR:?}
CLAMD=${BENCH_CLAMD:?moat-scan needs bench.py --scan}
SPAMD=${BENCH_SPAMD:?moat-scan needs bench.py --scan}
cat > "$RUN/moat-scan.conf" <<CONF

[spamassassin]
address = $SPAMD
max_size = 500000
fail = continue

[clamav]
address = $CLAMD
action = reject
fail = defer

[score]
tag = 5
reject = 10
CONF
MOAT_BENCH_FILTERS="relay badmailfrom recipients spamassassin clamav score" \
MOAT_BENCH_EXTRA="$RUN/moat-scan.conf" \
    exec "$HERE/moat-start.sh"

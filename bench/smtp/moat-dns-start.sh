#!/bin/sh
# Starts moatd for the shared bench harness with the DNS checks, the peer of
# the harness's postfix-dns (postscreen's weighted DNSBL/DNSWL, smtpd's
# reject_unknown_client_hostname, HELO and sender-domain restrictions, RHSBL
# on HELO/sender/client name, policyd-spf): moat-start.sh's checks plus
# dnsbl, fcrdns, rhsbl, helo, sender and spf, asking the benchmark's unbound
# (bench.py --dns passes BENCH_DNS). Refusals are set as Postfix's:
# DNSBL/DNSWL weights and threshold as postscreen_dnsbl_sites/_threshold,
# a client without PTR or not forward-confirmed refused, any HELO finding
# refused, any RHSBL listing refused, unknown sender domain and SPF fail
# refused. MOAT_DNS_CACHE sets [dns] cache_size (moatd's default: 10000
# answers per worker; 0: every lookup goes to the resolver).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=${BENCH_RUN_DIR:?}
DNS=${BENCH_DNS:?moat-dns needs bench.py --dns}
cat > "$RUN/moat-dns.conf" <<CONF

[dns]
resolver = $DNS
cache_size = ${MOAT_DNS_CACHE:-10000}

[dnsbl]
zones = zen.dnsbl.test*2 bl.dnsbl.test*1 list.dnswl.test=127.0.[0..255].[1..3]*-2
reject_threshold = 2

[fcrdns]
reject_threshold = 2

[rhsbl]
zones = dbl.dnsbl.test

[helo]
reject_threshold = 1
CONF
MOAT_BENCH_FILTERS="relay dnsbl fcrdns rhsbl helo sender spf badmailfrom recipients" \
MOAT_BENCH_EXTRA="$RUN/moat-dns.conf" \
    exec "$HERE/moat-start.sh"

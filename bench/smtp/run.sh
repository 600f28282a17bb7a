#!/bin/sh
# Runs the shared SMTP bench harness (../shared/bench/smtp) with moat added
# as one more system under test, all on 127.0.0.1.
#
#   bench/smtp/run.sh smoke
#   bench/smtp/run.sh throughput --suts moat,haraka,postfix,qpsmtpd-forkserver
#   bench/smtp/run.sh idle --suts moat --n 10000
#   MOAT_BASELINE=/tmp/old bench/smtp/run.sh throughput --suts moat,moat-base
#   bench/smtp/run.sh throughput --dns --suts moat,moat-dns,postfix,postfix-dns
#   bench/smtp/run.sh throughput --scan --suts moat,moat-scan,haraka,haraka-scan
#   bench/smtp/run.sh throughput --suts moat,moat-state
#
# The harness is used from a scratch copy under /tmp (it reads SUTs from its
# own folder); nothing of it is kept in this repository. Results of every
# run stay in $WORK/results.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench/smtp}
WORK=${BENCH_WORK:-/tmp/moat-bench}
[ -f "$SHARED/bench.py" ] || { echo "no harness at $SHARED" >&2; exit 1; }
make -C "$ROOT" -s all
mkdir -p "$WORK"
rm -rf "$WORK/harness"
cp -r "$SHARED" "$WORK/harness"
# Results outlive the scratch copy: every run adds a folder to $WORK/results.
mkdir -p "$WORK/results"
rm -rf "$WORK/harness/results"
ln -s "$WORK/results" "$WORK/harness/results"
sed "s#@ROOT@#$ROOT#g" "$ROOT/bench/smtp/moat.sut.in" > "$WORK/harness/suts/moat.sut"
# moat with the DNS checks (peer: the harness's postfix-dns; both need --dns,
# whose server is the shared ../dns, reached by the harness as ../dns).
# moat-dns-nocache is the same with no answer cache in moatd.
sed -e "s#@ROOT@#$ROOT#g" -e 's/@PORT@/12532/' -e 's/@CACHE@/10000/' \
    -e 's/@DESC@//' "$ROOT/bench/smtp/moat-dns.sut.in" > "$WORK/harness/suts/moat-dns.sut"
sed -e "s#@ROOT@#$ROOT#g" -e 's/@PORT@/12533/' -e 's/@CACHE@/0/' \
    -e 's/@DESC@/, no DNS cache in moatd/' \
    "$ROOT/bench/smtp/moat-dns.sut.in" > "$WORK/harness/suts/moat-dns-nocache.sut"
ln -sfn "$(cd "$SHARED/.." && pwd)/dns" "$WORK/dns"
# moat with the stateful defenses (ratelimit, greylist, karma): the cost of
# the state, against plain moat in the same run.
sed "s#@ROOT@#$ROOT#g" "$ROOT/bench/smtp/moat-state.sut.in" > "$WORK/harness/suts/moat-state.sut"
# moat with the content scanners (peer: the harness's haraka-scan; both need
# --scan, which starts the shared ../scan's clamd and spamd).
sed "s#@ROOT@#$ROOT#g" "$ROOT/bench/smtp/moat-scan.sut.in" > "$WORK/harness/suts/moat-scan.sut"
ln -sfn "$(cd "$SHARED/.." && pwd)/scan" "$WORK/scan"
# MOAT_BASELINE=<another checkout, built>: it runs too, as SUT moat-base,
# so a change is measured against what it changes in the same run.
if [ -n "${MOAT_BASELINE:-}" ]; then
	sed -e "s#@ROOT@#$MOAT_BASELINE#g" -e 's/^port = .*/port = 12531/' \
	    -e 's/^description = moat/description = moat baseline/' \
	    "$ROOT/bench/smtp/moat.sut.in" > "$WORK/harness/suts/moat-base.sut"
fi
# Haraka comes from the npm registry, installed once and reused.
if [ ! -d "$WORK/haraka-npm/node_modules/Haraka" ] && command -v npm >/dev/null; then
	mkdir -p "$WORK/haraka-npm"
	cp "$SHARED/peers/haraka-npm/package.json" "$WORK/haraka-npm/"
	(cd "$WORK/haraka-npm" && npm install --no-audit --no-fund >/dev/null 2>&1) ||
	    echo "bench: npm install Haraka failed; haraka SUTs will fail" >&2
fi
if [ -d "$WORK/haraka-npm/node_modules" ]; then
	ln -sfn "$WORK/haraka-npm/node_modules" \
	    "$WORK/harness/peers/haraka-npm/node_modules"
fi
cd "$WORK/harness"
exec /usr/bin/python3 ./bench.py "$@"

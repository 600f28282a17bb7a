#!/bin/sh
# Runs the shared classifier harness (../shared/bench/classify) with moat
# added as one more adapter, side by side with its peers in one run:
#
#   bench/classify/run.sh prep                 # corpus, once (npm registry)
#   bench/classify/run.sh eval moat,bogofilter,sa-bayes
#
# The harness is used from a scratch copy under /tmp; its results land in
# $WORK/results (a markdown table per corpus). Nothing of it is kept here.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench/classify}
WORK=${BENCH_WORK:-/tmp/moat-bench-classify}
[ -f "$SHARED/evaluate.py" ] || { echo "no harness at $SHARED" >&2; exit 1; }
make -C "$ROOT" -s all
mkdir -p "$WORK"
rm -rf "$WORK/harness"
cp -r "$SHARED" "$WORK/harness"
sed "s#@ROOT@#$ROOT#g" "$ROOT/bench/classify/moat.adapter.in" \
    > "$WORK/harness/adapters/moat"
# Adapters that are links to a shared implementation may arrive as small
# files holding the target's name: make them links again.
for a in "$WORK/harness/adapters/"*; do
	t=$(head -c 64 "$a")
	case "$t" in
	_*) [ -f "$WORK/harness/adapters/$t" ] && ln -sf "$t" "$a" ;;
	esac
done
chmod +x "$WORK/harness/adapters/"*
cd "$WORK/harness"
case "${1:-}" in
prep)	exec /usr/bin/python3 ./prep.py spamassassin ;;
eval)	exec /usr/bin/python3 ./evaluate.py --corpus spamassassin \
	    --adapters "${2:-moat,bogofilter,sa-bayes}" \
	    --results "$WORK/results" ;;
*)	echo "usage: $0 prep | eval [adapter,...]" >&2; exit 2 ;;
esac

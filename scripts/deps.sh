#!/bin/sh
# Installs the Debian packages moat builds and tests with, and nothing else.
# Idempotent: packages already present are not touched, and apt is only
# called when something is missing.
set -eu

BUILD="build-essential pkg-config libevent-dev libc-ares-dev libssl-dev
 liblmdb-dev libhiredis-dev libgmime-3.0-dev libcdb-dev libpcre2-dev
 libinih-dev openssl libargon2-dev libcrypt-dev publicsuffix"
TEST="libcmocka-dev python3-pytest swaks postfix dovecot-lmtpd clang
 libclang-rt-14-dev ucspi-tcp libnet-ssleay-perl libio-socket-ssl-perl tinycdb
 unbound python3-spf bind9-dnsutils dovecot-core argon2 apache2-utils
 clamav-daemon clamav spamd spamassassin"

missing=""
for p in $BUILD $TEST; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# clamav-daemon's and spamd's service units stay as installed: the tests
# start clamd and spamd themselves (a sigtool-made database; freshclam is
# never run).
# postfix asks how to configure itself; moat only uses its smtp-sink tool.
echo "postfix postfix/main_mailer_type select No configuration" |
    $SUDO debconf-set-selections
# An apt list older than a day (or none at all) is refreshed first.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 \
    2>/dev/null | head -n 1)" ]; then
	$SUDO apt-get update -qq
fi
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null

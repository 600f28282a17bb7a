# moat: GNU make, pkg-config. `make run` and `make test` are the quick start.
CC      ?= cc
PKGS    := libevent libevent_openssl libcares openssl lmdb hiredis inih \
           libpcre2-8 gmime-3.0
# Only what the code links today; the rest are installed for what comes.
LINK_PKGS := libevent libevent_openssl openssl inih gmime-3.0 lmdb libcares \
             libpcre2-8
# CFLAGS is the caller's (optimisation, sanitizers); MOAT_CFLAGS always
# applies, so the ASan build keeps -Werror and the libraries' paths.
CFLAGS  ?= -O2 -g
MOAT_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
           -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes \
           $(shell pkg-config --cflags $(LINK_PKGS) 2>/dev/null)
ALL_CFLAGS = $(CFLAGS) $(MOAT_CFLAGS)
LDLIBS  += $(shell pkg-config --libs $(LINK_PKGS) 2>/dev/null) -lcdb -lm \
           -largon2 -lcrypt -pthread
BUILD   ?= build

CORE    := src/core/buf.c src/core/log.c src/core/config.c src/core/lists.c \
           src/core/window.c src/core/addr.c \
           src/core/tpool.c src/core/dns.c src/core/memtrim.c src/core/svc.c
SMTP    := src/smtp/parse.c src/smtp/data.c src/smtp/session.c \
           src/smtp/command.c src/smtp/txnlog.c src/smtp/tls.c \
           src/smtp/client.c src/smtp/auth.c src/smtp/auth_smtp.c \
           src/smtp/auth_dovecot.c src/smtp/pregreet.c
CONTENT := src/content/tokenize.c src/content/html.c src/content/mime.c \
           src/content/classifier.c
STORE   := src/store/lmdb.c src/store/shared.c
FILTERS := src/filters/registry.c src/filters/pipeline.c \
           $(filter-out src/filters/registry.c src/filters/pipeline.c, \
             $(wildcard src/filters/*.c))
DELIVER := src/deliver/deliver.c src/deliver/maildir.c \
           src/deliver/forward.c src/deliver/qmailqueue.c \
           src/deliver/quarantine.c
DAEMON  := src/daemon/conf.c src/daemon/connlimit.c src/daemon/worker.c \
           src/daemon/master.c
LIBSRC  := $(CORE) $(SMTP) $(CONTENT) $(STORE) $(FILTERS) $(DELIVER) \
           $(DAEMON)
LIBOBJ  := $(LIBSRC:%.c=$(BUILD)/%.o)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run test unit integration asan fuzz lint clean cert

all: $(BUILD)/moatd $(BUILD)/moatctl

deps:
	@./scripts/deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libmoat.a: $(LIBOBJ)
	ar rcs $@ $^

$(BUILD)/moatd: $(BUILD)/src/daemon/main.o $(BUILD)/libmoat.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/moatctl: $(BUILD)/src/cli/moatctl.o $(BUILD)/src/cli/json.o \
    $(BUILD)/src/cli/quarantine_cmd.o $(BUILD)/src/cli/services_cmd.o \
    $(BUILD)/src/cli/greylist_cmd.o $(BUILD)/src/cli/karma_cmd.o \
    $(BUILD)/src/cli/ratelimit_cmd.o $(BUILD)/src/cli/explain_cmd.o \
    $(BUILD)/libmoat.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/filter_harness.h \
    tests/unit/tok_helpers.h $(BUILD)/libmoat.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -o $@ $< $(BUILD)/libmoat.a \
	    $(LDLIBS) -lcmocka

# moatctl's JSON reader is not in libmoat; its unit test links it.
$(BUILD)/tests/test_json: $(BUILD)/src/cli/json.o
$(BUILD)/tests/test_json: LDLIBS += $(BUILD)/src/cli/json.o $(BUILD)/libmoat.a

# A self-signed certificate for STARTTLS, made once (make run, tests).
var/tls/cert.pem:
	@mkdir -p var/tls
	@openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj \
	    "/CN=mx.example.test" -keyout var/tls/key.pem -out $@ 2>/dev/null
	@echo "made a self-signed certificate in var/tls/"

cert: var/tls/cert.pem

run: deps all cert
	@echo
	@echo "moatd listens on 127.0.0.1:2525 (local domain example.test)."
	@echo "Send a test message with:"
	@echo "  swaks --server 127.0.0.1:2525 --to alice@example.test --from you@example.org"
	@echo "It lands in var/mail/example.test/alice/new/. Ctrl-C stops moatd."
	@echo
	exec $(BUILD)/moatd -c etc/moat.conf

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: all cert
	/usr/bin/python3 -m pytest -q tests/integration

# The whole suite again under AddressSanitizer and UBSan.
asan:
	$(MAKE) BUILD=build/asan CFLAGS="-O1 -g -fsanitize=address,undefined \
	    -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    LDFLAGS="-fsanitize=address,undefined" unit
	$(MAKE) BUILD=build/asan CFLAGS="-O1 -g -fsanitize=address,undefined \
	    -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    build/asan/moatd build/asan/moatctl
	MOATD=build/asan/moatd MOATCTL=build/asan/moatctl ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    /usr/bin/python3 -m pytest -q tests/integration

test: deps
	$(MAKE) lint
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) fuzz FUZZ_SECONDS=15
	$(MAKE) integration
	$(MAKE) asan

FUZZERS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 \
    -fsanitize=fuzzer,address,undefined
FUZZ_SRC := src/core/buf.c src/smtp/parse.c src/smtp/data.c
FUZZ_CONTENT := src/core/buf.c src/content/tokenize.c src/content/html.c \
    src/content/mime.c
GMIME_CFLAGS = $(shell pkg-config --cflags gmime-3.0)
GMIME_LIBS = $(shell pkg-config --libs gmime-3.0)

build/fuzz/fuzz_mime: tests/fuzz/fuzz_mime.c $(FUZZ_CONTENT)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(GMIME_CFLAGS) -o $@ $^ $(GMIME_LIBS)

build/fuzz/fuzz_tokenize: tests/fuzz/fuzz_tokenize.c $(FUZZ_CONTENT)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(GMIME_CFLAGS) -o $@ $^ $(GMIME_LIBS)

# The whole session over a socketpair: the smtp layer and libevent.
FUZZ_SESSION := src/core/buf.c src/core/log.c src/smtp/parse.c \
    src/smtp/data.c src/smtp/session.c src/smtp/command.c \
    src/smtp/txnlog.c src/smtp/tls.c src/core/memtrim.c src/smtp/auth.c \
    src/smtp/auth_smtp.c src/smtp/auth_dovecot.c src/core/tpool.c \
    src/smtp/pregreet.c src/core/window.c src/core/addr.c
SESSION_LIBS = $(shell pkg-config --libs libevent libevent_openssl openssl) \
    -largon2 -lcrypt -pthread

build/fuzz/fuzz_session: tests/fuzz/fuzz_session.c $(FUZZ_SESSION)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $^ $(SESSION_LIBS)

# DNS replies through dns_answer_ttl, dns_parse and c-ares' own parsers.
DNS_LIBS = $(shell pkg-config --libs libcares libevent)

build/fuzz/fuzz_dns: tests/fuzz/fuzz_dns.c src/core/dns.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $^ $(DNS_LIBS)

# SMTP AUTH's decoders: base64, SASL PLAIN/LOGIN, passwd lines.
build/fuzz/fuzz_auth: tests/fuzz/fuzz_auth.c src/smtp/auth.c src/smtp/parse.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $^ -largon2 -lcrypt

build/fuzz/fuzz_json: tests/fuzz/fuzz_json.c src/cli/json.c src/smtp/parse.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $^

# The HELO readers are instrumented; the rest of moat links from the
# library (the archive's helo.o and rhsbl.o are never pulled in).
build/fuzz/fuzz_helo: tests/fuzz/fuzz_helo.c src/filters/helo.c \
    src/filters/rhsbl.c $(BUILD)/libmoat.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(GMIME_CFLAGS) -o $@ tests/fuzz/fuzz_helo.c \
	    src/filters/helo.c src/filters/rhsbl.c $(BUILD)/libmoat.a \
	    $(LDLIBS)

# The lists filter's parser and matcher: PCRE2, and core/lists.c's CIDR
# code (which needs libcdb).
build/fuzz/fuzz_lists: tests/fuzz/fuzz_lists.c src/filters/lists_file.c \
    src/core/lists.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $^ -lpcre2-8 -lcdb

# The limited filter's address parser: the RCPT local part.
build/fuzz/fuzz_limited: tests/fuzz/fuzz_limited.c src/filters/limited_parse.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $^

build/fuzz/%: tests/fuzz/%.c $(FUZZ_SRC)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $^

# Builds the libFuzzer harnesses and runs each for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
fuzz: $(FUZZERS)
	@set -e; for f in $(FUZZERS); do \
	    mkdir -p build/fuzz/corpus-$$(basename $$f); \
	    seeds=tests/fuzz/seeds-$$(basename $$f | sed 's/^fuzz_//'); \
	    [ -d $$seeds ] || seeds=; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        build/fuzz/corpus-$$(basename $$f) $$seeds 2>&1 | tail -3; done

# SPF: the evaluator's driver, the differential check against pyspf
# (tests/spf/differential.py, python3-spf) and the suite's conversion.
.PHONY: spf-differential spf-suite

$(BUILD)/spf_driver: tests/spf/driver.c tests/spf/spf_fake.h \
    src/filters/spf_eval.c src/filters/spf_eval.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -o $@ tests/spf/driver.c \
	    src/filters/spf_eval.c

spf-differential: $(BUILD)/spf_driver
	/usr/bin/python3 tests/spf/differential.py -n 10000 \
	    --driver $(BUILD)/spf_driver

spf-suite:
	/usr/bin/python3 tests/spf/convert.py \
	    /usr/share/doc/python3-spf/rfc7208-tests.yml.gz > tests/spf/rfc7208.txt

# Unsafe C string functions stay out of the tree (STYLE: Idioms).
lint:
	@! grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|alloca)\s*\(' \
	    $$(find src tests -name '*.c' -o -name '*.h') || \
	    { echo "lint: unsafe function above"; exit 1; }
	@echo "lint: ok"

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

/*
 * spf_eval.h: moat's SPF evaluator (RFC 7208 check_host()), asynchronous,
 * on an abstract resolver shaped like src/core/dns.h, so the SPF filter
 * plugs it onto dns_query()/dns_cancel() and tests onto a fake zone.
 *
 * A check is a small state machine: it asks the resolver one question at
 * a time (or one batch: the addresses of up to 10 MX or PTR names), and
 * goes on when the answers are in. It owns every request it started;
 * spf_check_cancel() cancels them and frees the check. Nothing in a
 * record can make it allocate more than SPF_RECORD_MAX per include level
 * (at most SPF_DEPTH_MAX levels) or do more than the RFC's 10 DNS terms.
 *
 * The pure parts (record terms, macro expansion, record selection) are
 * exported for table tests and the fuzzer (tests/fuzz/fuzz_spf.c).
 */
#ifndef MOAT_SPF_EVAL_H
#define MOAT_SPF_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../core/dns.h"

/* RFC 7208 §4.6.4: terms that query DNS (include a mx ptr exists
 * redirect) per check, void lookups per check, MX names per "mx", PTR
 * names looked at for "ptr" and %{p}. */
#define SPF_DNS_TERMS_MAX	10
#define SPF_VOID_MAX		2
#define SPF_MX_NAMES_MAX	10
#define SPF_PTR_NAMES_MAX	10
/* RFC 7208 §7.3 and RFC 1035 §2.3.4: a name we query, a label. */
#define SPF_DOMAIN_MAX		253
#define SPF_LABEL_MAX		63
/* Ours: a selected "v=spf1" record longer than this is a permerror (the
 * RFC asks records to fit a 512-byte reply, §3.4; big real ones are
 * around 1-2 KB). Explanation text handed back is cut at SPF_EXPLAIN_MAX;
 * a matched directive's text at SPF_MECH_TEXT_MAX. */
#define SPF_RECORD_MAX		4096
#define SPF_EXPLAIN_MAX		512
#define SPF_MECH_TEXT_MAX	128
/* Include levels: every level below the top costs a DNS term. */
#define SPF_DEPTH_MAX		(SPF_DNS_TERMS_MAX + 1)
/* Inputs: a local part (RFC 5321 allows servers to take longer than 64),
 * HELO and our own name (for %{r}). Longer ones are refused (none). */
#define SPF_LOCAL_MAX		255
#define SPF_NAME_MAX		255

/* RFC 7208 §2.6. */
enum spf_code {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};

/* Which identity is checked (RFC 7208 §2.3, §2.4). */
enum spf_identity {
	SPF_ID_MAILFROM,	/* MAIL FROM; the null sender checks
				 * postmaster@HELO */
	SPF_ID_HELO,		/* the HELO name itself */
};

/* The abstract resolver: dns_query()/dns_cancel() or a fake. query()
 * returns NULL only when it cannot ask (then cb never runs); cb may run
 * later, or even from inside query() (a fake does; the evaluator copes),
 * and never after cancel(). */
struct spf_resolver {
	struct dns_req	*(*query)(enum dns_type, const char *name, dns_cb,
			    void *arg);
	void		 (*cancel)(struct dns_req *);
};

struct spf_params {
	int		 family;	/* AF_INET or AF_INET6 (v4-mapped
					 * IPv6 is taken as IPv4, §5) */
	unsigned char	 addr[16];	/* the client, network order */
	const char	*local;		/* MAIL FROM local part; "" or NULL
					 * means postmaster */
	const char	*domain;	/* MAIL FROM domain; "" or NULL is
					 * the null sender */
	const char	*helo;		/* HELO/EHLO argument */
	const char	*receiver;	/* our host name for %{r}; NULL is
					 * "unknown" */
	enum spf_identity identity;
	time_t		 now;		/* %{t}; 0 reads the clock */
};

struct spf_result {
	enum spf_code	 code;
	/* The identity's domain, and the one whose record decided (after
	 * redirect=; same as domain otherwise). */
	char		 domain[SPF_NAME_MAX + 1];
	char		 record_domain[SPF_DOMAIN_MAX + 1];
	/* The top-level directive that matched ("-all", "include:x"), the
	 * term that was wrong for a syntax permerror, or "". */
	char		 mechanism[SPF_MECH_TEXT_MAX + 1];
	/* Prefix length of the innermost address mechanism that decided
	 * (ip4/ip6/a/mx: its CIDR; all: 0), -1 otherwise: greylisting
	 * keys on the domain only when this is narrow enough. */
	int		 match_cidr;
	/* exp= text, macro-expanded, cut at SPF_EXPLAIN_MAX; only for
	 * fail, "" when there is none or it could not be had (§6.2). */
	char		 explanation[SPF_EXPLAIN_MAX + 1];
	const char	*reason;	/* static text for logs, or "" */
	unsigned	 dns_terms;	/* §4.6.4 counters, as used */
	unsigned	 void_lookups;
	unsigned	 queries;	/* every question asked */
};

typedef void (*spf_done_cb)(const struct spf_result *, void *arg);

struct spf_check;

/*
 * Starts check_host() for params (copied; the strings need not outlive
 * the call). done runs exactly once with the result unless the check is
 * cancelled first; the result is valid only during done, and the check
 * is freed when done returns. done may run before spf_check_start()
 * returns (an answer without DNS, an out-of-memory temperror, or a
 * resolver answering synchronously): then the return value is NULL.
 * Otherwise it is the handle for spf_check_cancel().
 */
struct spf_check *spf_check_start(const struct spf_resolver *,
		    const struct spf_params *, spf_done_cb done, void *arg);
/* Cancels every request of the check and frees it; done will not run.
 * A no-op when called from inside done. */
void		 spf_check_cancel(struct spf_check *);
/* "pass", "fail", ... as in Received-SPF (RFC 7208 §9.1). */
const char	*spf_code_name(enum spf_code);

/* ---- pure parts, for tests and fuzzing ---- */

enum spf_term_kind {
	SPF_T_ALL, SPF_T_INCLUDE, SPF_T_A, SPF_T_MX, SPF_T_PTR, SPF_T_IP4,
	SPF_T_IP6, SPF_T_EXISTS,	/* mechanisms (§5) */
	SPF_T_REDIRECT, SPF_T_EXP, SPF_T_UNKNOWN_MOD,	/* modifiers (§6) */
};

/* One term of a record, as offsets into it. */
struct spf_term {
	enum spf_term_kind kind;
	enum spf_code	 qual;		/* PASS FAIL SOFTFAIL NEUTRAL */
	size_t		 off, len;	/* the whole term */
	size_t		 arg_off, arg_len;	/* domain-spec, or value */
	bool		 has_arg;	/* false: the implicit <domain> */
	int		 cidr4, cidr6;	/* 32/128 unless given */
	unsigned char	 addr[16];	/* ip4 (4 bytes) / ip6 */
};

/* Record-wide facts from one pass over every term (§4.6: any syntax
 * error anywhere is a permerror before anything is evaluated). */
struct spf_record_info {
	size_t		 terms;
	bool		 has_redirect, has_exp;
	size_t		 redirect_off, redirect_len;
	size_t		 exp_off, exp_len;
	size_t		 bad_off, bad_len;	/* the offending term */
	const char	*reason;
};

/* Reads the term at *pos (after spaces) of rec[0..len); 1 and *pos past
 * it, 0 at the end, -1 on a syntax error (t->off/len name the term). */
int		 spf_term_next(const char *rec, size_t len, size_t *pos,
		    struct spf_term *t);
/* Checks a whole record ("v=spf1 ..."): 0, or -1 with info->reason. */
int		 spf_record_parse(const char *rec, size_t len,
		    struct spf_record_info *info);

/* Macro contexts (§7.1): a domain-spec, or exp= text (which also has
 * c, r, t and spaces, and is neither dot-stripped nor truncated). */
enum spf_macro_ctx { SPF_MACRO_DOMAIN, SPF_MACRO_EXPLAIN };

/* The values macros expand to; NULL p means "not known yet". */
struct spf_macro_vars {
	const char	*s, *l, *o, *d, *i, *p, *v, *h, *c, *r, *t;
};

/* Syntax of a macro-string: 0 or -1; *uses_p tells whether %{p} is in
 * it (it needs DNS before expanding). For SPF_MACRO_DOMAIN it also
 * checks the domain-end rule (§7.1: a macro, or "." toplabel ["."]). */
int		 spf_macro_check(const char *spec, size_t len,
		    enum spf_macro_ctx, bool *uses_p);
/*
 * Expands spec into out (size outlen, NUL-terminated). DOMAIN: one
 * trailing dot dropped, then leftmost labels dropped until at most 253
 * bytes remain (§7.3); outlen must be > SPF_DOMAIN_MAX; -1 if no label
 * boundary allows that. EXPLAIN: cut at outlen - 1. Memory and time are
 * linear in len whatever the values; -1 on a syntax error.
 */
int		 spf_macro_expand(const char *spec, size_t len,
		    enum spf_macro_ctx, const struct spf_macro_vars *,
		    char *out, size_t outlen);
/* True when name can be asked: 1-253 bytes, labels of 1-63, one
 * trailing dot allowed. */
bool		 spf_name_ok(const char *name);

#endif

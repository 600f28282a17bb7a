/*
 * test_registry.c: every registered filter has a name, a summary, at
 * least one hook, defaults that load, and a unit test file of its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../src/filters/filter.h"

static void
test_every_filter(void **state)
{
	size_t	i, k, hooks;
	char	err[256], path[256];
	void	*conf, *st;

	(void)state;
	assert_true(filter_count > 0);
	for (i = 0; i < filter_count; i++) {
		const struct filter *f = filter_registry[i];

		assert_non_null(f->name);
		assert_non_null(f->summary);
		assert_true(strlen(f->summary) > 10);
		assert_ptr_equal(filter_find(f->name), f);
		assert_int_equal(filter_index(f), i);
		for (k = 0, hooks = 0; k < STAGE_COUNT; k++)
			hooks += f->hook[k] != NULL;
		if (hooks == 0)
			fail_msg("filter %s has no hook", f->name);
		conf = calloc(1, f->conf_size);
		assert_int_equal(opt_defaults(f->opts, conf, NULL, err,
		    sizeof(err)), 0);
		st = NULL;
		if (f->init != NULL)
			assert_int_equal(f->init(conf, &st, err,
			    sizeof(err)), 0);
		if (st != NULL && f->fini != NULL)
			f->fini(st);
		opt_free(f->opts, conf);
		free(conf);
		snprintf(path, sizeof(path), "tests/unit/test_filter_%s.c",
		    f->name);
		if (access(path, R_OK) != 0)
			fail_msg("filter %s has no %s", f->name, path);
	}
	/* Names are unique. */
	for (i = 0; i < filter_count; i++)
		for (k = i + 1; k < filter_count; k++)
			assert_string_not_equal(filter_registry[i]->name,
			    filter_registry[k]->name);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_filter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

// The in-kernel test runner, speaking KTAP version 1 as KUnit does, so any
// KTAP parser (the toolkit's, or Linux's kunit_parser.py) can read it:
//
//   KTAP version 1
//   1..2
//       KTAP version 1
//       # Subtest: string
//       1..3
//       ok 1 strlen_counts
//       # kernel/tests/test_string.c:20: expected ... got ...
//       not ok 2 strcmp_orders
//       ok 3 memmove_overlaps # SKIP not on Tuesdays
//   not ok 1 string
//   ...
//
// `test=GLOB` selects a whole suite when GLOB matches its name, otherwise
// the cases whose `suite.case` matches.
#include <stdarg.h>
#include "glob.h"
#include "ktest.h"
#include "printf.h"
#include "string.h"

extern const struct ktest_suite *const __start_ktest_suites[];
extern const struct ktest_suite *const __stop_ktest_suites[];

#define INDENT "    "

void ktest_fail(struct ktest *t, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kprintf(INDENT "# %s:%d: ", file, line);
    vkprintf(fmt, ap);
    kprintf("\n");
    va_end(ap);
    t->failed = true;
}

void ktest_skip(struct ktest *t, const char *reason)
{
    t->skipped = true;
    t->skip_reason = reason;
}

static bool suite_enabled(const struct ktest_suite *s)
{
    return !s->enabled || s->enabled();
}

static bool case_selected(const struct ktest_suite *s, const struct ktest_case *c,
                          const char *glob)
{
    if (!glob || !*glob || glob_match(glob, s->name))
        return true;
    char full[128];
    snprintf(full, sizeof(full), "%s.%s", s->name, c->name);
    return glob_match(glob, full);
}

static int selected_cases(const struct ktest_suite *s, const char *glob)
{
    int n = 0;
    if (!suite_enabled(s))
        return 0;
    for (const struct ktest_case *c = s->cases; c->name; c++)
        n += case_selected(s, c, glob);
    return n;
}

// Runs one suite as a nested KTAP block; returns true if nothing failed.
static bool run_suite(const struct ktest_suite *s, int index, const char *glob)
{
    kprintf(INDENT "KTAP version 1\n");
    kprintf(INDENT "# Subtest: %s\n", s->name);
    kprintf(INDENT "1..%d\n", selected_cases(s, glob));
    bool passed = true;
    int n = 0;
    for (const struct ktest_case *c = s->cases; c->name; c++) {
        if (!case_selected(s, c, glob))
            continue;
        struct ktest t = { .name = c->name };
        c->run(&t);
        n++;
        if (t.failed) {
            passed = false;
            kprintf(INDENT "not ok %d %s\n", n, c->name);
        } else if (t.skipped) {
            kprintf(INDENT "ok %d %s # SKIP %s\n", n, c->name, t.skip_reason ? t.skip_reason : "");
        } else {
            kprintf(INDENT "ok %d %s\n", n, c->name);
        }
    }
    kprintf("%s %d %s\n", passed ? "ok" : "not ok", index, s->name);
    return passed;
}

bool ktest_run(const char *glob)
{
    int nsuites = 0;
    for (const struct ktest_suite *const *s = __start_ktest_suites; s < __stop_ktest_suites; s++)
        nsuites += selected_cases(*s, glob) > 0;

    kprintf("KTAP version 1\n");
    kprintf("1..%d\n", nsuites);
    if (nsuites == 0) {
        // Most likely a typo in the glob: fail rather than pass vacuously.
        kprintf("# no test matches \"%s\"\n", glob ? glob : "");
        return false;
    }
    bool passed = true;
    int index = 0;
    for (const struct ktest_suite *const *s = __start_ktest_suites; s < __stop_ktest_suites; s++)
        if (selected_cases(*s, glob) > 0)
            passed &= run_suite(*s, ++index, glob);
    return passed;
}

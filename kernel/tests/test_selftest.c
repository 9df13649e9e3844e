// A suite that exists to test the test reporting itself: with the
// `selftest_fail` option it shows a pass, a failure with its diagnostic,
// and a skip, so the toolkit's KTAP parser can be checked against the real
// kernel. Without the option it is not even listed.
#include "cmdline.h"
#include "ktest.h"

static bool selftest_enabled(void)
{
    return cmdline_has("selftest_fail");
}

static void passes(struct ktest *t)
{
    KEXPECT_EQ(t, 1 + 1, 2);
}

static void fails_on_purpose(struct ktest *t)
{
    int answer = 41;
    KEXPECT_EQ(t, answer, 42);
}

static void skipped(struct ktest *t)
{
    KTEST_SKIP(t, "skipped on purpose");
}

KTEST_SUITE_IF(ktap_selftest, selftest_enabled,
               KTEST_CASE(passes),
               KTEST_CASE(fails_on_purpose),
               KTEST_CASE(skipped));

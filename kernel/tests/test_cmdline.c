#include "cmdline.h"
#include "ktest.h"

static void bare_and_valued(struct ktest *t)
{
    struct cmdline cl;
    const char *v;
    cmdline_parse(&cl, "test heartbeat=100 crash=pagefault");
    KEXPECT_EQ(t, cl.nargs, 3);
    KEXPECT_TRUE(t, cmdline_lookup(&cl, "test", &v));
    KEXPECT_STREQ(t, v, "");
    KEXPECT_TRUE(t, cmdline_lookup(&cl, "heartbeat", &v));
    KEXPECT_STREQ(t, v, "100");
    KEXPECT_TRUE(t, cmdline_lookup(&cl, "crash", &v));
    KEXPECT_STREQ(t, v, "pagefault");
    KEXPECT_FALSE(t, cmdline_lookup(&cl, "hz", &v));
}

static void prefix_is_not_a_match(struct ktest *t)
{
    struct cmdline cl;
    cmdline_parse(&cl, "testing tes heartbeatx=1");
    KEXPECT_FALSE(t, cmdline_lookup(&cl, "test", NULL));
    KEXPECT_FALSE(t, cmdline_lookup(&cl, "heartbeat", NULL));
    KEXPECT_TRUE(t, cmdline_lookup(&cl, "tes", NULL));
}

static void whitespace_and_empty(struct ktest *t)
{
    struct cmdline cl;
    cmdline_parse(&cl, "");
    KEXPECT_EQ(t, cl.nargs, 0);
    cmdline_parse(&cl, NULL);
    KEXPECT_EQ(t, cl.nargs, 0);
    cmdline_parse(&cl, "   a  \t b=  ");
    KEXPECT_EQ(t, cl.nargs, 2);
    const char *v;
    KEXPECT_TRUE(t, cmdline_lookup(&cl, "b", &v));
    KEXPECT_STREQ(t, v, "");
}

static void value_keeps_later_equals(struct ktest *t)
{
    struct cmdline cl;
    const char *v;
    cmdline_parse(&cl, "test=printf.* x=a=b");
    KEXPECT_TRUE(t, cmdline_lookup(&cl, "test", &v));
    KEXPECT_STREQ(t, v, "printf.*");
    KEXPECT_TRUE(t, cmdline_lookup(&cl, "x", &v));
    KEXPECT_STREQ(t, v, "a=b");
}

static void last_occurrence_wins(struct ktest *t)
{
    struct cmdline cl;
    const char *v;
    cmdline_parse(&cl, "hz=100 hz=1000");
    KEXPECT_TRUE(t, cmdline_lookup(&cl, "hz", &v));
    KEXPECT_STREQ(t, v, "1000");
}

static void numbers(struct ktest *t)
{
    unsigned long v = 7;
    KEXPECT_TRUE(t, parse_ulong("0", &v));
    KEXPECT_EQ(t, v, 0);
    KEXPECT_TRUE(t, parse_ulong("18446744073709551615", &v));
    KEXPECT_EQ(t, v, 18446744073709551615UL);
    KEXPECT_FALSE(t, parse_ulong("18446744073709551616", &v));
    KEXPECT_FALSE(t, parse_ulong("", &v));
    KEXPECT_FALSE(t, parse_ulong("12ms", &v));
    KEXPECT_FALSE(t, parse_ulong("-1", &v));
    KEXPECT_FALSE(t, parse_ulong(NULL, &v));
}

static void too_many_words(struct ktest *t)
{
    char text[CMDLINE_MAXARG * 2 + 8];
    int n = 0;
    for (int i = 0; i < CMDLINE_MAXARG + 3; i++) {
        text[n++] = 'a';
        text[n++] = ' ';
    }
    text[n] = '\0';
    struct cmdline cl;
    cmdline_parse(&cl, text);
    KEXPECT_EQ(t, cl.nargs, CMDLINE_MAXARG);
    KEXPECT_TRUE(t, cl.truncated);
}

static void validate_rejects_unknown_and_bad_values(struct ktest *t)
{
    struct cmdline cl;
    const char *v;
    cmdline_parse(&cl, "hz=200 bogus=1 hz=0 act_pool=abc pti=maybe selftest_fail=1 run= heartbeat");
    KEXPECT_EQ(t, cmdline_validate(&cl), 6);
    KEXPECT_FALSE(t, cl.rejected[0]);           // hz=200
    KEXPECT_TRUE(t, cl.rejected[1]);            // bogus=1
    KEXPECT_TRUE(t, cl.rejected[2]);            // hz=0
    KEXPECT_FALSE(t, cl.rejected[7]);           // bare heartbeat: its default
    KEXPECT_EQ(t, cmdline_lookup_ulong(&cl, "hz"), 200);          // the rejected hz=0 counts as absent
    KEXPECT_EQ(t, cmdline_lookup_ulong(&cl, "act_pool"), 64);     // the default
    KEXPECT_EQ(t, cmdline_lookup_ulong(&cl, "heartbeat"), 1000);
    KEXPECT_FALSE(t, cmdline_lookup(&cl, "pti", &v));
    KEXPECT_FALSE(t, cmdline_lookup(&cl, "bogus", &v));
}

static void explain_names_the_value_used(struct ktest *t)
{
    static const char *const want[] = {
        "rejected hz=0: out of range 1..1000000; using hz=100",
        "rejected pti=maybe: not one of on|off; using pti=on",
        "rejected crash=bogus: not one of pagefault|divzero|assert|doublefault|hang; ignored",
        "rejected bogus: unknown key; ignored",
        "rejected act_pool=9000: out of range 1..8176; using act_pool=64",
        NULL,                                   // run=hello: accepted
        "rejected run=: needs a value; using run=hello",
    };
    struct cmdline cl;
    char line[128];
    cmdline_parse(&cl, "hz=0 pti=maybe crash=bogus bogus act_pool=9000 run=hello run=");
    KEXPECT_EQ(t, cmdline_validate(&cl), 6);
    for (int i = 0; i < (int)(sizeof(want) / sizeof(want[0])); i++) {
        KEXPECT_EQ(t, cl.rejected[i], want[i] != NULL);
        if (!want[i])
            continue;
        cmdline_explain(&cl, i, line, sizeof(line));
        KEXPECT_STREQ(t, line, want[i]);
    }
}

static void every_key_has_a_table_entry(struct ktest *t)
{
    static const char *const used[] = { "crash", "test", "selftest_fail", "hz", "act_pool", "pti",
                                        "heartbeat", "run" };
    for (unsigned i = 0; i < sizeof(used) / sizeof(used[0]); i++)
        KEXPECT_TRUE(t, cmdline_key(used[i]) != NULL);
    KEXPECT_TRUE(t, cmdline_key("bogus") == NULL);
}

KTEST_SUITE(cmdline,
            KTEST_CASE(bare_and_valued),
            KTEST_CASE(prefix_is_not_a_match),
            KTEST_CASE(whitespace_and_empty),
            KTEST_CASE(value_keeps_later_equals),
            KTEST_CASE(last_occurrence_wins),
            KTEST_CASE(numbers),
            KTEST_CASE(too_many_words),
            KTEST_CASE(validate_rejects_unknown_and_bad_values),
            KTEST_CASE(explain_names_the_value_used),
            KTEST_CASE(every_key_has_a_table_entry));

// The string and memory functions.
#include "ktest.h"
#include "string.h"

static void lengths(struct ktest *t)
{
    KEXPECT_EQ(t, strlen(""), 0);
    KEXPECT_EQ(t, strlen("revenant"), 8);
    KEXPECT_EQ(t, strnlen("revenant", 3), 3);
    KEXPECT_EQ(t, strnlen("ab", 10), 2);
}

static void comparisons(struct ktest *t)
{
    KEXPECT_EQ(t, strcmp("abc", "abc"), 0);
    KEXPECT_TRUE(t, strcmp("abc", "abd") < 0);
    KEXPECT_TRUE(t, strcmp("abd", "abc") > 0);
    KEXPECT_TRUE(t, strcmp("ab", "abc") < 0);
    KEXPECT_TRUE(t, strcmp("\xff", "a") > 0);   // compares as unsigned char
    KEXPECT_EQ(t, strncmp("abcX", "abcY", 3), 0);
    KEXPECT_TRUE(t, strncmp("abcX", "abcY", 4) < 0);
    KEXPECT_EQ(t, strncmp("a", "a", 100), 0);
    KEXPECT_EQ(t, memcmp("ab\0c", "ab\0c", 4), 0);
    KEXPECT_TRUE(t, memcmp("ab\0c", "ab\0d", 4) < 0);
}

static void search(struct ktest *t)
{
    const char *s = "key=value";
    KEXPECT_TRUE(t, strchr(s, '=') == s + 3);
    KEXPECT_TRUE(t, strchr(s, 'z') == NULL);
    KEXPECT_TRUE(t, strchr(s, '\0') == s + 9);
}

static void set_and_copy(struct ktest *t)
{
    char buf[8];
    memset(buf, 'x', sizeof(buf));
    KEXPECT_EQ(t, buf[0], 'x');
    KEXPECT_EQ(t, buf[7], 'x');
    memcpy(buf, "abc", 4);
    KEXPECT_STREQ(t, buf, "abc");
    KEXPECT_EQ(t, buf[4], 'x');             // nothing beyond n touched
}

static void memmove_overlap(struct ktest *t)
{
    char up[] = "abcdef";
    memmove(up + 2, up, 4);                 // dst above src
    KEXPECT_STREQ(t, up, "ababcd");
    char down[] = "abcdef";
    memmove(down, down + 2, 4);             // dst below src
    KEXPECT_STREQ(t, down, "cdefef");
}

static void strlcpy_truncates(struct ktest *t)
{
    char buf[4];
    KEXPECT_EQ(t, strlcpy(buf, "abcdef", sizeof(buf)), 6);
    KEXPECT_STREQ(t, buf, "abc");
    KEXPECT_EQ(t, strlcpy(buf, "ab", sizeof(buf)), 2);
    KEXPECT_STREQ(t, buf, "ab");
}

KTEST_SUITE(string,
            KTEST_CASE(lengths),
            KTEST_CASE(comparisons),
            KTEST_CASE(search),
            KTEST_CASE(set_and_copy),
            KTEST_CASE(memmove_overlap),
            KTEST_CASE(strlcpy_truncates));

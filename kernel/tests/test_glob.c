#include "glob.h"
#include "ktest.h"

static void literals(struct ktest *t)
{
    KEXPECT_TRUE(t, glob_match("printf", "printf"));
    KEXPECT_FALSE(t, glob_match("printf", "printf.hex"));
    KEXPECT_FALSE(t, glob_match("printf.hex", "printf"));
    KEXPECT_TRUE(t, glob_match("", ""));
    KEXPECT_FALSE(t, glob_match("", "a"));
}

static void star(struct ktest *t)
{
    KEXPECT_TRUE(t, glob_match("*", ""));
    KEXPECT_TRUE(t, glob_match("*", "anything.at.all"));
    KEXPECT_TRUE(t, glob_match("printf.*", "printf.hex"));
    KEXPECT_FALSE(t, glob_match("printf.*", "string.lengths"));
    KEXPECT_TRUE(t, glob_match("*.hex", "printf.hex"));
    KEXPECT_TRUE(t, glob_match("p*f*x", "printf.hex"));
    KEXPECT_TRUE(t, glob_match("a*b*c", "aXbYbZc"));
    KEXPECT_FALSE(t, glob_match("a*b*c", "aXbYbZ"));
    KEXPECT_TRUE(t, glob_match("**a", "a"));
}

static void question_mark(struct ktest *t)
{
    KEXPECT_TRUE(t, glob_match("b?tmap", "bitmap"));
    KEXPECT_FALSE(t, glob_match("b?tmap", "btmap"));
    KEXPECT_TRUE(t, glob_match("???", "abc"));
    KEXPECT_FALSE(t, glob_match("???", "ab"));
    KEXPECT_TRUE(t, glob_match("*?", "a"));
    KEXPECT_FALSE(t, glob_match("*?", ""));
}

static void backtracking(struct ktest *t)
{
    // Needs the star to absorb more after a partial match.
    KEXPECT_TRUE(t, glob_match("*ab", "aab"));
    KEXPECT_TRUE(t, glob_match("*aab", "aaab"));
    KEXPECT_FALSE(t, glob_match("*aab", "aaba"));
}

KTEST_SUITE(glob,
            KTEST_CASE(literals),
            KTEST_CASE(star),
            KTEST_CASE(question_mark),
            KTEST_CASE(backtracking));

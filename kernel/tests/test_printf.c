// vsnprintf: every conversion, flag and length the kernel relies on.
#include <stdarg.h>
#include <stdint.h>
#include "ktest.h"
#include "printf.h"

// Format into a buffer and compare; reports the format on mismatch.
#define EXPECT_FMT(t, want, ...)                                           \
    do {                                                                   \
        char _buf[128];                                                    \
        int _n = snprintf(_buf, sizeof(_buf), __VA_ARGS__);                \
        KEXPECT_STREQ(t, _buf, want);                                      \
        KEXPECT_EQ(t, _n, strlen(want));                                   \
    } while (0)

// For formats gcc's format checking (rightly) rejects at compile time but
// vsnprintf must still survive at run time.
static int unchecked_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

#define EXPECT_UNCHECKED(t, want, ...)                                     \
    do {                                                                   \
        char _buf[128];                                                    \
        int _n = unchecked_snprintf(_buf, sizeof(_buf), __VA_ARGS__);      \
        KEXPECT_STREQ(t, _buf, want);                                      \
        KEXPECT_EQ(t, _n, strlen(want));                                   \
    } while (0)

static void decimal(struct ktest *t)
{
    EXPECT_FMT(t, "0", "%d", 0);
    EXPECT_FMT(t, "42", "%d", 42);
    EXPECT_FMT(t, "-42", "%i", -42);
    EXPECT_FMT(t, "2147483647", "%d", 2147483647);
    EXPECT_FMT(t, "-2147483648", "%d", (int)-2147483648LL);
    EXPECT_FMT(t, "4294967295", "%u", 4294967295u);
}

static void long_lengths(struct ktest *t)
{
    EXPECT_FMT(t, "-9223372036854775808", "%ld", (long)INT64_MIN);
    EXPECT_FMT(t, "18446744073709551615", "%lu", (unsigned long)UINT64_MAX);
    EXPECT_FMT(t, "ffffffffffffffff", "%llx", (unsigned long long)UINT64_MAX);
    EXPECT_FMT(t, "ffffffff80100000", "%lx", 0xffffffff80100000UL);
    EXPECT_FMT(t, "123", "%zu", (size_t)123);
    EXPECT_FMT(t, "-1", "%hhd", 255);       // converted to signed char
    EXPECT_FMT(t, "65535", "%hu", -1);
}

static void hex(struct ktest *t)
{
    EXPECT_FMT(t, "0", "%x", 0);
    EXPECT_FMT(t, "deadbeef", "%x", 0xdeadbeefu);
    EXPECT_FMT(t, "DEADBEEF", "%X", 0xdeadbeefu);
    EXPECT_FMT(t, "ffffffff", "%x", -1);   // int-sized without a length
}

static void width_and_padding(struct ktest *t)
{
    EXPECT_FMT(t, "   42", "%5d", 42);
    EXPECT_FMT(t, "00042", "%05d", 42);
    EXPECT_FMT(t, "-0042", "%05d", -42);    // zeros go after the sign
    EXPECT_FMT(t, "42   |", "%-5d|", 42);
    EXPECT_FMT(t, "0000000000001000", "%016lx", 0x1000UL);
    EXPECT_FMT(t, "123456", "%3d", 123456); // width is a minimum
    EXPECT_FMT(t, "  7", "%*d", 3, 7);
    EXPECT_FMT(t, "7  |", "%*d|", -3, 7);
}

static void strings_and_chars(struct ktest *t)
{
    EXPECT_FMT(t, "hello", "%s", "hello");
    EXPECT_UNCHECKED(t, "(null)", "%s", (char *)NULL);
    EXPECT_FMT(t, "   ab", "%5s", "ab");
    EXPECT_FMT(t, "ab   |", "%-5s|", "ab");
    EXPECT_FMT(t, "abc", "%.3s", "abcdef");
    EXPECT_FMT(t, "x", "%c", 'x');
    EXPECT_FMT(t, "  x", "%3c", 'x');
    EXPECT_FMT(t, "100%", "%d%%", 100);
}

static void pointers(struct ktest *t)
{
    EXPECT_FMT(t, "0x0000000000000000", "%p", (void *)0);
    EXPECT_FMT(t, "0xffffffff80100000", "%p", (void *)0xffffffff80100000UL);
}

static void unknown_conversion_is_visible(struct ktest *t)
{
    EXPECT_UNCHECKED(t, "a%qb", "a%qb");
    EXPECT_UNCHECKED(t, "end%", "end%");
}

static void truncation(struct ktest *t)
{
    char buf[6];
    int n = snprintf(buf, sizeof(buf), "%s", "abcdefgh");
    KEXPECT_EQ(t, n, 8);                    // the untruncated length
    KEXPECT_STREQ(t, buf, "abcde");         // always NUL-terminated
    buf[0] = 'Z';
    n = snprintf(buf, 0, "%d", 12345);      // size 0 writes nothing
    KEXPECT_EQ(t, n, 5);
    KEXPECT_EQ(t, buf[0], 'Z');
    n = snprintf(buf, 1, "%d", 9);
    KEXPECT_EQ(t, buf[0], '\0');
}

static void mixed(struct ktest *t)
{
    EXPECT_FMT(t, "heartbeat 3", "heartbeat %lu", 3UL);
    EXPECT_FMT(t, "  #2 0xffffffff80101275", "  #%d 0x%016lx", 2, 0xffffffff80101275UL);
    EXPECT_FMT(t, "a=1 b=two c=3", "a=%d b=%s c=%x", 1, "two", 3);
}

KTEST_SUITE(printf,
            KTEST_CASE(decimal),
            KTEST_CASE(long_lengths),
            KTEST_CASE(hex),
            KTEST_CASE(width_and_padding),
            KTEST_CASE(strings_and_chars),
            KTEST_CASE(pointers),
            KTEST_CASE(unknown_conversion_is_visible),
            KTEST_CASE(truncation),
            KTEST_CASE(mixed));

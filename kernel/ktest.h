// In-kernel unit tests, reported as KTAP version 1 (see ktest.c).
//
//   static void parses_numbers(struct ktest *t) { KEXPECT_EQ(t, f(2), 4); }
//   KTEST_SUITE(mysuite, KTEST_CASE(parses_numbers));
//
// Suites register themselves through the `ktest_suites` linker section, so
// adding a test file is all it takes.
#ifndef KTEST_H
#define KTEST_H
#include <stdbool.h>
#include <stddef.h>
#include "string.h"

struct ktest {
    const char *name;
    bool failed;
    bool skipped;
    const char *skip_reason;
};

struct ktest_case {
    const char *name;
    void (*run)(struct ktest *t);
};

struct ktest_suite {
    const char *name;
    const struct ktest_case *cases;     // terminated by a { NULL } entry
    bool (*enabled)(void);              // NULL: always enabled
};

#define KTEST_CASE(fn) { #fn, fn }

#define KTEST_SUITE_IF(sname, enabled_fn, ...)                                   \
    static const struct ktest_case sname##_ktest_cases[] = { __VA_ARGS__, { 0, 0 } }; \
    static const struct ktest_suite sname##_ktest_suite = {                      \
        #sname, sname##_ktest_cases, enabled_fn };                               \
    static const struct ktest_suite *const sname##_ktest_ptr                     \
        __attribute__((used, section("ktest_suites"))) = &sname##_ktest_suite

#define KTEST_SUITE(sname, ...) KTEST_SUITE_IF(sname, NULL, __VA_ARGS__)

void ktest_fail(struct ktest *t, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ktest_skip(struct ktest *t, const char *reason);

// Expectations record a failure (with a diagnostic) and let the case go on.
#define KEXPECT_TRUE(t, cond)                                                    \
    do {                                                                         \
        if (!(cond))                                                             \
            ktest_fail(t, __FILE__, __LINE__, "expected %s, got false", #cond);  \
    } while (0)

#define KEXPECT_FALSE(t, cond)                                                   \
    do {                                                                         \
        if (cond)                                                                \
            ktest_fail(t, __FILE__, __LINE__, "expected !(%s), got true", #cond); \
    } while (0)

#define KEXPECT_EQ(t, got, want)                                                 \
    do {                                                                         \
        unsigned long long _g = (unsigned long long)(got);                       \
        unsigned long long _w = (unsigned long long)(want);                      \
        if (_g != _w)                                                            \
            ktest_fail(t, __FILE__, __LINE__, "expected %s == %s (%lld), got %lld (0x%llx)", \
                       #got, #want, (long long)_w, (long long)_g, _g);                                  \
    } while (0)

#define KEXPECT_STREQ(t, got, want)                                              \
    do {                                                                         \
        const char *_g = (got), *_w = (want);                                    \
        if (!_g || strcmp(_g, _w) != 0)                                          \
            ktest_fail(t, __FILE__, __LINE__, "expected %s == \"%s\", got \"%s\"", \
                       #got, _w, _g ? _g : "(null)");                            \
    } while (0)

#define KTEST_SKIP(t, reason)                                                    \
    do {                                                                         \
        ktest_skip(t, reason);                                                   \
        return;                                                                  \
    } while (0)

// Run the suites selected by `glob` (NULL or "" = all) and report them.
// Returns true if everything selected passed (skips count as passes).
bool ktest_run(const char *glob);
#endif

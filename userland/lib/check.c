#include <check.h>
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>

int check_failures;

static const char *errno_of(long v)
{
    return v < 0 ? errno_name(v) : "";
}

int check(const char *what, long got, long want)
{
    const char *prog = __argc > 0 ? __argv[0] : "?";
    if (got == want) {
        printf("%s: ok %s\n", prog, what);
        return 1;
    }
    printf("%s: FAIL %s: got %ld%s%s%s, want %ld%s%s%s\n", prog, what,
           got, got < 0 ? " (" : "", errno_of(got), got < 0 ? ")" : "",
           want, want < 0 ? " (" : "", errno_of(want), want < 0 ? ")" : "");
    check_failures++;
    return 0;
}

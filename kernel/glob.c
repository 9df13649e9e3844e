// Glob matching for `test=GLOB`.
#include "glob.h"

// Iterative with one backtrack point (the last `*`): linear in practice and
// no recursion, so a hostile pattern cannot exhaust the kernel stack.
bool glob_match(const char *pattern, const char *s)
{
    const char *star = 0, *star_s = 0;
    while (*s) {
        if (*pattern == '?' || (*pattern && *pattern != '*' && *pattern == *s)) {
            pattern++;
            s++;
        } else if (*pattern == '*') {
            star = pattern++;
            star_s = s;
        } else if (star) {
            pattern = star + 1;     // let the last `*` absorb one more char
            s = ++star_s;
        } else {
            return false;
        }
    }
    while (*pattern == '*')
        pattern++;
    return *pattern == '\0';
}

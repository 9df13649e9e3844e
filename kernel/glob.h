#ifndef GLOB_H
#define GLOB_H
#include <stdbool.h>
// Shell-style match of the whole string: `*` any run (also empty), `?` any
// one character, everything else literal.
bool glob_match(const char *pattern, const char *s);
#endif

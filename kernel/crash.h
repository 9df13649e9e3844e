#ifndef CRASH_H
#define CRASH_H
// Deliberate failures for `crash=...`, so the toolkit's crash detection and
// symbolization can be tested against a real kernel.
void crash(const char *how) __attribute__((noreturn));
void crash_pagefault(void);
void crash_divzero(void);
void crash_assert(void);
void crash_doublefault(void);
void crash_hang(void) __attribute__((noreturn));
#endif

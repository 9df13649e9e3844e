#ifndef CHECK_H
#define CHECK_H
// Expectations for the test programs the suite reads (badptr, blocking):
// one console line each,
//   <argv[0]>: ok <what>
//   <argv[0]>: FAIL <what>: got <n> (<ERRNO>), want <n> (<ERRNO>)
// (the errno name only for negative numbers), and a count of the FAILs for
// the program's exit status.
extern int check_failures;

// got == want; prints the line and counts a failure.
int check(const char *what, long got, long want);
#endif

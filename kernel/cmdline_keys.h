// The kernel command line's keys: the one table of what is accepted.
//
// The kernel checks every word against it at boot (cmdline_validate,
// kernel/cmdline.c) and prints one `cmdline: rejected ...` line per word it
// will not use. toolchain/cmdline.py reads this very file to refuse an
// `invoke run --append` the kernel would reject, before booting; the test
// tests/test_cmdline.py boots the kernel to check that both agree. So keep
// one entry per line, with literal arguments only.
//
//   KEY_FLAG(name, help)                       the bare word only: `selftest_fail`
//   KEY_WORD(name, help)                       bare, or with any value: `test`, `test=GLOB`
//   KEY_TEXT(name, help)                       with a value that is not empty: `run=PROGS`
//   KEY_ULONG(name, min, max, default, help)   a decimal number in min..max; bare: the default
//   KEY_ENUM(name, "a|b", "default", help)     one of the words; a "" default: the key is absent
//
// A rejected word counts as absent: the last valid occurrence of its key
// wins, else the default.

KEY_ENUM(crash, "pagefault|divzero|assert|doublefault|hang", "", "prove a failure path: a panic report and exit 35 (hang: silence)")
KEY_ENUM(blktest, "write|verify|write_hold|unflushed_hold", "", "write a pattern near the end of the disk, or verify one written by an earlier boot, and power off (exit 33 when it holds); *_hold: write (flushed or not) and wait to be killed")
KEY_ULONG(blk_timeout, 1, 600000, 10000, "ms of guest time a disk request may take before the disk is declared dead and reset")
KEY_WORD(test, "run the in-kernel KTAP tests (test=GLOB: the suites or suite.cases matching GLOB) and power off")
KEY_FLAG(selftest_fail, "with test: add suite ktap_selftest (a pass, a deliberate failure, a skip)")
KEY_ULONG(hz, 1, 1000000, 100, "timer tick rate for preemption, in Hz")
KEY_ULONG(act_pool, 1, 8176, 64, "activation records per program")
KEY_ENUM(pti, "on|off", "on", "page-table isolation; off only to measure what it costs")
KEY_ULONG(heartbeat, 1, 3600000, 1000, "print `heartbeat N` every MS ms of guest time, forever")
KEY_ULONG(restart_every, 1, 3600000, 10, "an in-place restart every MS ms of guest time: every kernel wait dropped, every blocked call rerun")
KEY_ULONG(restart_at, 1, 3600000000000, 1000000, "one in-place restart once the guest clock passes NS ns (under -icount shift=0: NS guest instructions), at the next safe point")
KEY_ULONG(checkpoint_every, 1, 3600000, 1000, "write a checkpoint to the disk every MS ms of guest time (needs a disk: invoke run --disk)")
KEY_ULONG(checkpoint_full, 1, 1000000, 32, "every Nth checkpoint writes every page, not only the dirty ones")
KEY_ULONG(checkpoint_cut, 1, 7, 1, "debug: power off (exit 37) right after step STEP of a checkpoint write (docs/persistence.md)")
KEY_ULONG(checkpoint_cut_after, 0, 1000000, 1, "debug: with checkpoint_cut, the cut comes in the checkpoint after N committed ones of this boot")
KEY_ULONG(page_quota, 16, 1048576, 8192, "pages one environment may map (its own and shared): bounds what it adds to a checkpoint")
KEY_ENUM(checkpoint_final, "on|off", "on", "at a clean power-off, a last checkpoint of the finished system (nothing running: the next boot is clean); off keeps the last one taken while programs ran, to inspect")
KEY_ENUM(restore, "on|off", "on", "at boot, go on from the newest valid checkpoint on the disk; off: a clean boot that leaves them there")
KEY_ENUM(outcommit, "on|off", "", "hold program output until the next checkpoint commits (default: on with a disk and checkpoint_every)")
KEY_TEXT(run, "the programs init starts: run=prog1,prog2:arg (read by init, not the kernel)")

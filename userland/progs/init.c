// init, env 1: run the programs named by the kernel command line.
//
//   run=prog1,prog2:arg1:arg2
//
// Every program is spawned first and then all are waited for, so they run
// concurrently. The first one started holds the console's input. A program that fails to spawn or exits non-zero counts as
// failed, and so does every wait() result that is not a child still to be
// reaped (a kernel bug, e.g. a blocked wait whose rewind was lost: it
// "returns" its own call number); init powers off with ok = (no failures).
#include <revenant.h>
#include <stdio.h>
#include <string.h>

#define MAX_PROGS 32
#define MAX_ARGS  16
#define MAX_UNEXPECTED 8    // wait() results that are no child of ours: then give up

struct child {
    char *argv[MAX_ARGS + 1];
    int argc;
    long id;            // env id, or -errno if spawn failed
    int reaped;         // wait() returned it already
};

static char cmdline[1024];
static struct child children[MAX_PROGS];

// The value of the last `run=` in the command line (the last occurrence
// wins, as for every option; the kernel rejects an empty one), or NULL.
// Words are separated by spaces; the value is cut at the next space in place.
static char *find_run(char *s)
{
    char *run = NULL, *run_end = NULL;
    for (char *w = s; *w; ) {
        while (*w == ' ')
            w++;
        char *end = w;
        while (*end && *end != ' ')
            end++;
        if (strncmp(w, "run=", 4) == 0 && end > w + 4)
            run = w + 4, run_end = end;
        w = end;
    }
    if (run_end)
        *run_end = '\0';
    return run;
}

// Split `s` at `sep` in place into at most max pieces; returns the count.
static int split(char *s, char sep, char **out, int max)
{
    int n = 0;
    while (n < max) {
        out[n++] = s;
        char *p = strchr(s, sep);
        if (!p)
            break;
        *p = '\0';
        s = p + 1;
    }
    return n;
}

static void spawn_one(struct child *c)
{
    c->id = sys_spawn(c->argv[0], c->argv, c->argc);
    if (c->id < 0)
        printf("init: spawn %s failed: %s\n", c->argv[0], errno_name(c->id));
    else
        printf("init: %s is env %ld\n", c->argv[0], c->id);
}

static struct child *find_child(long id, int n)
{
    for (int i = 0; i < n; i++)
        if (children[i].id == id)
            return &children[i];
    return NULL;
}

// Wait for `live` children; returns how many failed (exited non-zero, or an
// unexpected wait result).
static int wait_all(int n, int live)
{
    int failed = 0, unexpected = 0;
    while (live > 0) {
        int status = 0;
        long id = sys_wait(-1, &status);
        if (id < 0) {
            printf("init: wait failed: %s\n", errno_name(id));
            return failed + live;
        }
        struct child *c = find_child(id, n);
        if (!c || c->reaped) {
            // Only init's own children are ever its to reap (orphans are
            // nobody's), and each of them once.
            printf("init: wait returned %ld, not a child still to be reaped\n", id);
            failed++;
            if (++unexpected == MAX_UNEXPECTED) {
                printf("init: giving up after %d unexpected wait results\n", unexpected);
                return failed + live;
            }
            continue;
        }
        c->reaped = 1;
        printf("init: %s exited status=%d\n", c->argv[0], status);
        failed += status != 0;
        live--;
    }
    return failed;
}

int main(void)
{
    long len = sys_cmdline(cmdline, sizeof(cmdline) - 1);
    if (len < 0) {
        printf("init: cmdline failed: %s\n", errno_name(len));
        len = 0;
    }
    cmdline[len < (long)sizeof(cmdline) ? len : (long)sizeof(cmdline) - 1] = '\0';
    char *run = find_run(cmdline);
    if (!run || !*run) {
        puts("init: nothing to run");
        sys_poweroff(1);
        return 0;
    }
    // Console input goes to the first program started (docs/abi.md): given
    // with its spawn, so it holds the console from its first instruction.
    long given = sys_console_give(CONSOLE_NEXT_CHILD);
    if (given < 0)
        printf("init: console_give failed: %s\n", errno_name(given));
    char *progs[MAX_PROGS];
    int n = split(run, ',', progs, MAX_PROGS);
    int failed = 0, live = 0;
    for (int i = 0; i < n; i++) {
        struct child *c = &children[i];
        c->argc = split(progs[i], ':', c->argv, MAX_ARGS);
        c->argv[c->argc] = NULL;
        spawn_one(c);
        if (c->id < 0)
            failed++;
        else
            live++;
    }
    failed += wait_all(n, live);
    printf("init: all done (%d failed)\n", failed);
    sys_poweroff(failed == 0);
    return failed != 0;
}

// expect_killed:<prog>[:arg...]: run a program that must die. Spawns <prog>
// with argv <prog> <arg>..., waits for it, and exits 0 iff a CPU exception
// in user mode killed it (status STATUS_KILLED(vector), kernel/abi.h); any
// other end -- an exit, even exit(0), or a kill for another reason
// (STATUS_KILLED_OTHER) -- exits 1, a spawn failure 2. So init's verdict,
// and QEMU's exit status 33, can say "the attack was stopped":
//
//   run=expect_killed:breakin:iret_read:0xffffffff80115020,victim
//
//   expect_killed: <prog> killed as expected (status <n>)
//   expect_killed: FAIL <prog> ended with status <n>, not killed by a CPU exception
#include <revenant.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        puts("expect_killed: usage: expect_killed:<prog>[:arg...]");
        return 2;
    }
    long id = sys_spawn(argv[1], argv + 1, argc - 1);
    if (id < 0) {
        printf("expect_killed: spawn %s failed: %s\n", argv[1], errno_name(id));
        return 2;
    }
    int status = 0;
    long r = sys_wait(id, &status);
    if (r != id) {
        printf("expect_killed: wait for %s failed: %s\n", argv[1], errno_name(r));
        return 2;
    }
    if (STATUS_WAS_KILLED(status) && status != STATUS_KILLED_OTHER) {
        printf("expect_killed: %s killed as expected (status %d)\n", argv[1], status);
        return 0;
    }
    printf("expect_killed: FAIL %s ended with status %d, not killed by a CPU exception\n", argv[1],
           status);
    return 1;
}

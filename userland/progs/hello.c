// The smallest useful program: one line, exit 0.
#include <revenant.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    printf("hello: hello, world from env %ld (argc=%d, argv[0]=%s)\n", sys_getpid(), argc,
           argc > 0 ? argv[0] : "?");
    return 0;
}

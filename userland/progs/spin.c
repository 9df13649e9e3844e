// spin[:reports[:iterations]]: a busy loop that never yields, printing
//   spin <pid> progress <n>
// every `iterations` iterations, `reports` times. Two of them side by side
// only both advance if the timer preempts them.
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    unsigned long reports = argc > 1 ? strtoul(argv[1], 0, 10) : 20;
    unsigned long iters = argc > 2 ? strtoul(argv[2], 0, 10) : 2000000;
    long pid = sys_getpid();
    volatile unsigned long counter = 0;     // volatile: the loop is real work
    for (unsigned long n = 1; n <= reports; n++) {
        for (unsigned long i = 0; i < iters; i++)
            counter++;
        printf("spin %ld progress %lu\n", pid, n);
    }
    return 0;
}

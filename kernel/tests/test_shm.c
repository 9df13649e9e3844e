// Shared-memory handles: the encoding that makes a forged or stale handle
// miss (shm.c). The system calls themselves: userland/progs/ipc_hostile.c.
#include "abi.h"
#include "ktest.h"
#include "shm.h"

static void handles_round_trip(struct ktest *t)
{
    uint32_t gen = 99;
    for (int slot = 0; slot < SHM_REGIONS_MAX; slot++) {
        KEXPECT_EQ(t, shm_handle_slot(shm_handle(slot, 0), &gen), slot);
        KEXPECT_EQ(t, gen, 0);
        KEXPECT_EQ(t, shm_handle_slot(shm_handle(slot, 12345), &gen), slot);
        KEXPECT_EQ(t, gen, 12345);
    }
    // What a child finds for the regions spawn_shared gave it.
    KEXPECT_EQ(t, shm_handle(0, 0), SHM_GIVEN(0));
    KEXPECT_EQ(t, shm_handle(3, 0), SHM_GIVEN(3));
    // Generations wrap below 2^22, so every handle stays a positive int.
    KEXPECT_EQ(t, shm_handle(7, (1U << 22) + 5), shm_handle(7, 5));
    KEXPECT_TRUE(t, shm_handle(SHM_REGIONS_MAX - 1, (1U << 22) - 1) < (1UL << 31));
}

static void forged_handles_decode_to_nothing(struct ktest *t)
{
    uint32_t gen;
    static const uint64_t forged[] = {
        0, 1, 255, 256 + SHM_REGIONS_MAX, (uint64_t)-1, (1UL << 31) + 1, (1UL << 40),
        ((1UL << 22) + 1) << 8,
    };
    for (unsigned i = 0; i < sizeof(forged) / sizeof(forged[0]); i++)
        KEXPECT_EQ(t, shm_handle_slot(forged[i], &gen), -1);
}

KTEST_SUITE(shm,
            KTEST_CASE(handles_round_trip),
            KTEST_CASE(forged_handles_decode_to_nothing));

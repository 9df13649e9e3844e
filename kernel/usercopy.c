// copyin, copyout, strncpy_from_user: range checks in C, the access itself
// in usercopy.S under the exception table.
#include "abi.h"
#include "usercopy.h"
#include "vm.h"

long user_copy(void *dst, const void *src, uint64_t len);
long user_strncpy(char *dst, const char *src, long max);

struct extable_entry {
    uint64_t insn, fixup;
};
extern const struct extable_entry usercopy_extable[], usercopy_extable_end[];

uint64_t extable_fixup(uint64_t rip)
{
    for (const struct extable_entry *e = usercopy_extable; e < usercopy_extable_end; e++)
        if (e->insn == rip)
            return e->fixup;
    return 0;
}

int copyin(void *dst, uint64_t uva, uint64_t len)
{
    if (len == 0)
        return 0;
    if (!is_user_range(uva, len))
        return -EFAULT;
    return (int)user_copy(dst, (const void *)uva, len);
}

int copyout(uint64_t uva, const void *src, uint64_t len)
{
    if (len == 0)
        return 0;
    if (!is_user_range(uva, len))
        return -EFAULT;
    return (int)user_copy((void *)uva, src, len);
}

long strncpy_from_user(char *dst, uint64_t uva, long max)
{
    if (max <= 0)
        return -ENAMETOOLONG;
    if (!is_user_range(uva, 1))
        return -EFAULT;
    // Never read past the end of user space, whatever max says.
    uint64_t room = USER_LIMIT - uva;
    long limit = (uint64_t)max < room ? max : (long)room;
    long n = user_strncpy(dst, (const char *)uva, limit);
    if (n < 0)
        return -EFAULT;
    if (n == limit) {
        dst[limit - 1] = '\0';
        return limit < max ? -EFAULT : -ENAMETOOLONG;
    }
    return n;
}

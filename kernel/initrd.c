// Lookup in the table that build/gen/initrd.S provides.
#include <stddef.h>
#include "initrd.h"
#include "string.h"

// Weak: a kernel linked without the generated file (a bare build of
// kernel/ alone) simply has no programs, instead of failing to link.
extern const struct user_image initrd_images[] __attribute__((weak));
extern const uint64_t initrd_nimages __attribute__((weak));

int initrd_count(void)
{
    return &initrd_nimages ? (int)initrd_nimages : 0;
}

const struct user_image *initrd_get(int i)
{
    return i >= 0 && i < initrd_count() ? &initrd_images[i] : NULL;
}

const struct user_image *initrd_find(const char *name)
{
    for (int i = 0; i < initrd_count(); i++)
        if (strcmp(initrd_images[i].name, name) == 0)
            return &initrd_images[i];
    return NULL;
}

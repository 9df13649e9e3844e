// mem* and str*: the kernel's own, compiled for user space (kernel/lib).
#include "../../kernel/lib/string.h"

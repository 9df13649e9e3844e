#include <revenant.h>

const char *errno_name(long err)
{
    switch (err < 0 ? -err : err) {
    case EPERM:        return "EPERM";
    case ENOENT:       return "ENOENT";
    case ESRCH:        return "ESRCH";
    case EIO:          return "EIO";
    case E2BIG:        return "E2BIG";
    case ENOEXEC:      return "ENOEXEC";
    case EBADF:        return "EBADF";
    case ECHILD:       return "ECHILD";
    case EAGAIN:       return "EAGAIN";
    case ENOMEM:       return "ENOMEM";
    case EFAULT:       return "EFAULT";
    case EBUSY:        return "EBUSY";
    case ENODEV:       return "ENODEV";
    case EINVAL:       return "EINVAL";
    case ENOSPC:       return "ENOSPC";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS:       return "ENOSYS";
    case ETIMEDOUT:    return "ETIMEDOUT";
    default:           return "E?";
    }
}

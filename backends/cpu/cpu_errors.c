#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cpu_errors.c — the CPU backend's last-error message: every file of the
 * backend reports through cpu_fail, and the plugin table's last_error
 * returns it. Kept apart so that the kernels need not depend on the plugin
 * table's file (nor it on them) just to report an error. */
#include <stdarg.h>
#include <stdio.h>

#include "cpu_backend.h"

#define CPU_ERROR_LEN 1024

/* One message per thread, as the ABI asks: calls on different devices may
 * come from different threads at once. */
static _Thread_local char cpu_last_error_buf[CPU_ERROR_LEN];

int cpu_fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cpu_last_error_buf, sizeof cpu_last_error_buf, fmt, ap);
    va_end(ap);
    return status;
}

const char *cpu_last_error(void)
{
    return cpu_last_error_buf;
}

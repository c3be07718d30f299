/* status.c — per-thread error messages and status names. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdio.h>
#include <string.h>

#include "internal.h"

#define LNET_ERROR_LEN 2048

/* One message per thread: a failure on one thread never overwrites the
 * message another thread is about to read. */
static _Thread_local char last_error[LNET_ERROR_LEN];

const char *lnet_last_error(void)
{
    return last_error;
}

lnet_status lnet_vfail(lnet_status status, const char *fmt, va_list ap)
{
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    return status;
}

lnet_status lnet_fail(lnet_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lnet_vfail(status, fmt, ap);
    va_end(ap);
    return status;
}

lnet_status lnet_fail_prefix(lnet_status status, const char *prefix)
{
    /* Shift the message right and put "prefix: " in front, truncating the
     * tail if the whole does not fit. */
    size_t plen = strlen(prefix) + 2;
    if (plen >= LNET_ERROR_LEN)
        plen = LNET_ERROR_LEN - 1;
    size_t mlen = strlen(last_error);
    if (mlen > LNET_ERROR_LEN - 1 - plen)
        mlen = LNET_ERROR_LEN - 1 - plen;
    memmove(last_error + plen, last_error, mlen);
    last_error[plen + mlen] = '\0';
    memcpy(last_error, prefix, plen - 2);
    last_error[plen - 2] = ':';
    last_error[plen - 1] = ' ';
    return status;
}

const char *lnet_echo(const char *s, char *buf)
{
    if (!s)
        return "(null)";
    size_t n = strlen(s);
    if (n < LNET_ECHO_LEN)
        return s;
    snprintf(buf, LNET_ECHO_LEN, "%.40s...", s);
    return buf;
}

const char *lnet_status_name(lnet_status status)
{
    switch (status) {
    case LNET_OK: return "LNET_OK";
    case LNET_ERR_INVALID: return "LNET_ERR_INVALID";
    case LNET_ERR_NOMEM: return "LNET_ERR_NOMEM";
    case LNET_ERR_IO: return "LNET_ERR_IO";
    case LNET_ERR_FORMAT: return "LNET_ERR_FORMAT";
    case LNET_ERR_OVERFLOW: return "LNET_ERR_OVERFLOW";
    case LNET_ERR_DEVICE: return "LNET_ERR_DEVICE";
    case LNET_ERR_PLUGIN: return "LNET_ERR_PLUGIN";
    case LNET_ERR_UNSUPPORTED: return "LNET_ERR_UNSUPPORTED";
    }
    return "LNET_ERR_UNKNOWN";
}

#define LNET_STR2(x) #x
#define LNET_STR(x) LNET_STR2(x)

const char *lnet_version(void)
{
    return LNET_STR(LNET_VERSION_MAJOR) "." LNET_STR(LNET_VERSION_MINOR) "." LNET_STR(
        LNET_VERSION_PATCH);
}

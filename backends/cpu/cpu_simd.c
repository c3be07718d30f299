#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cpu_simd.c — run-time choice of the fast kernel's instruction set.
 *
 * The tile kernels for AVX-512 and AVX2 live in files compiled with their
 * own -m flags; nothing of theirs runs until this file has checked, with
 * the compiler's cpuid support (which also checks that the OS saves the
 * wider registers), that the CPU can execute them. */
#include <string.h>

#include "cpu_backend.h"
#include "cpu_simd.h"

/* configure defines LNET_HAVE_X86_SIMD when the AVX-512 and AVX2 tiles are
 * built (an x86 host whose compiler takes their -m flags). */
#ifdef LNET_HAVE_X86_SIMD
#define CPU_X86 1
#endif

static int have_avx512(void)
{
#ifdef CPU_X86
    __builtin_cpu_init();
    /* The AVX-512 file is compiled with F, DQ, BW and VL (any of which the
     * compiler may use), so all four are required, with FMA and AVX2. */
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static int have_avx2(void)
{
#ifdef CPU_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

const cpu_tile_kernel *cpu_simd_best(void)
{
#ifdef CPU_X86
    if (have_avx512())
        return &cpu_tile_avx512;
    if (have_avx2())
        return &cpu_tile_avx2;
#endif
    return &cpu_tile_generic;
}

int cpu_simd_select(const char *request, const char *origin, const cpu_tile_kernel **out)
{
    *out = NULL;
    if (!request || !request[0] || strcmp(request, "auto") == 0) {
        *out = cpu_simd_best();
        return LNET_PLUGIN_OK;
    }
    if (strcmp(request, "generic") == 0) {
        *out = &cpu_tile_generic;
        return LNET_PLUGIN_OK;
    }
    if (strcmp(request, "avx512") == 0 || strcmp(request, "avx2") == 0) {
        const int is512 = request[3] == '5';
        if (is512 ? !have_avx512() : !have_avx2())
            return cpu_fail(LNET_PLUGIN_ERR_UNSUPPORTED,
                            "cpu: %s asks for the SIMD path '%s', which this CPU cannot run "
                            "(it needs %s; the best path here is '%s')",
                            origin, request,
                            is512 ? "AVX-512 F/DQ/BW/VL with AVX2 and FMA" : "AVX2 and FMA",
                            cpu_simd_best()->name);
#ifdef CPU_X86
        *out = is512 ? &cpu_tile_avx512 : &cpu_tile_avx2;
        return LNET_PLUGIN_OK;
#endif
    }
    return cpu_fail(LNET_PLUGIN_ERR_INVALID,
                    "cpu: %s = '%.100s' is not a SIMD path (use avx512, avx2, generic or auto)",
                    origin, request);
}

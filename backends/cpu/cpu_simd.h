/* cpu_simd.h — which tile kernel (instruction set) the fast kernel runs:
 * what this CPU and OS support, and a path asked for by name. */
#ifndef LNET_CPU_SIMD_H
#define LNET_CPU_SIMD_H

#include "cpu_tile.h"

/* The widest path this machine can run: avx512, then avx2, then generic. */
const cpu_tile_kernel *cpu_simd_best(void);

/* The path named by `request` ("avx512", "avx2", "generic"; NULL, "" or
 * "auto": the best). `origin` names where the request came from, for the
 * message ("LONGNET_CPU_SIMD", "device option simd"). A name that is not a
 * path is LNET_PLUGIN_ERR_INVALID; a path this CPU cannot run is
 * LNET_PLUGIN_ERR_UNSUPPORTED. */
int cpu_simd_select(const char *request, const char *origin, const cpu_tile_kernel **out);

#endif /* LNET_CPU_SIMD_H */

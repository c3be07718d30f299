/* cpu_pool.h — the fast kernel's thread pool: started when the cpu device
 * is opened, stopped when it is closed, so that no job pays for creating
 * threads. One job at a time (calls on one device come from one thread at a
 * time, by the plugin contract). */
#ifndef LNET_CPU_POOL_H
#define LNET_CPU_POOL_H

typedef struct cpu_pool cpu_pool;

/* Runs on every thread of the pool, the caller's included, as thread
 * 0 .. threads-1; it splits the work itself (cpu_fast.c: an atomic counter). */
typedef void (*cpu_pool_fn)(void *arg, int thread);

/* threads >= 1: the caller plus threads - 1 workers. Returns
 * LNET_PLUGIN_OK or a failure recorded with cpu_fail. */
int cpu_pool_create(int threads, cpu_pool **out);
void cpu_pool_free(cpu_pool *pool);

/* Calls fn(arg, t) on every thread and returns when all have returned. */
void cpu_pool_run(cpu_pool *pool, cpu_pool_fn fn, void *arg);

#endif /* LNET_CPU_POOL_H */

#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cpu_pool.c — a minimal pthread pool for the fast kernel (cpu_pool.h).
 *
 * Workers sleep on a condition variable between jobs rather than spinning:
 * a level is milliseconds of work, so a wake-up costs nothing measurable,
 * and sleeping keeps an oversubscribed pool (more threads than cores, which
 * the tests do on purpose) from stealing time from the threads that work. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "cpu_backend.h"
#include "cpu_pool.h"

struct cpu_pool {
    int threads;
    pthread_t *workers;        /* threads - 1 of them */
    int started;               /* workers actually created */
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    unsigned long generation;  /* bumped for every job */
    int pending;               /* workers still running the current job */
    int stop;
    cpu_pool_fn fn;
    void *arg;
};

typedef struct worker_arg {
    cpu_pool *pool;
    int index;
} worker_arg;

static void *worker_main(void *p)
{
    worker_arg wa = *(worker_arg *)p;
    free(p);
    cpu_pool *pool = wa.pool;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (pool->generation == seen && !pool->stop)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stop)
            break;
        seen = pool->generation;
        cpu_pool_fn fn = pool->fn;
        void *arg = pool->arg;
        pthread_mutex_unlock(&pool->lock);
        fn(arg, wa.index);
        pthread_mutex_lock(&pool->lock);
        if (--pool->pending == 0)
            pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

static void pool_stop(cpu_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->stop = 1;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->started; i++)
        pthread_join(pool->workers[i], NULL);
    pool->started = 0;
}

int cpu_pool_create(int threads, cpu_pool **out)
{
    *out = NULL;
    if (threads < 1)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu thread pool: %d threads (must be >= 1)",
                        threads);
    cpu_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return cpu_fail(LNET_PLUGIN_ERR_NOMEM, "cpu thread pool: out of memory");
    pool->threads = threads;
    if (threads > 1) {
        pool->workers = calloc((size_t)threads - 1, sizeof *pool->workers);
        if (!pool->workers) {
            free(pool);
            return cpu_fail(LNET_PLUGIN_ERR_NOMEM,
                            "cpu thread pool: out of memory for %d thread handles", threads - 1);
        }
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    for (int i = 1; i < threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        int rc = ENOMEM;
        if (wa) {
            wa->pool = pool;
            wa->index = i;
            rc = pthread_create(&pool->workers[i - 1], NULL, worker_main, wa);
        }
        if (rc != 0) {
            free(wa);
            cpu_pool_free(pool);
            return cpu_fail(rc == ENOMEM || rc == EAGAIN ? LNET_PLUGIN_ERR_NOMEM
                                                         : LNET_PLUGIN_ERR_DEVICE,
                            "cpu thread pool: cannot start thread %d of %d (error %d)", i,
                            threads, rc);
        }
        pool->started++;
    }
    *out = pool;
    return LNET_PLUGIN_OK;
}

void cpu_pool_free(cpu_pool *pool)
{
    if (!pool)
        return;
    pool_stop(pool);
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool->workers);
    free(pool);
}

void cpu_pool_run(cpu_pool *pool, cpu_pool_fn fn, void *arg)
{
    if (pool->started == 0) {
        fn(arg, 0);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->arg = arg;
    pool->pending = pool->started;
    pool->generation++;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    fn(arg, 0);

    pthread_mutex_lock(&pool->lock);
    while (pool->pending > 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}

/* broken.c — plugins that break the contract one way each, for showing
 * that `longnet test` catches them (tests/cli_conformance.sh). Each is the
 * vendor example (plugins/example) with its run_segment wrapped, built
 * once per way (backend "broken" in every build):
 *   BROKEN_WRONG  a wrong answer: 1e-2 added to every output row it wrote;
 *   BROKEN_CRASH  a crash (SIGSEGV) on a job whose last segment is ragged;
 *   BROKEN_LAX    a bad job accepted: dilation > segment returns success
 *                 without computing anything. */
#include <signal.h>

#define lnet_plugin_entry example_plugin_entry
#include "../../plugins/example/example_plugin.c"
#undef lnet_plugin_entry

static int broken_run_segment(void *device, const lnet_segment_job *job)
{
#if defined(BROKEN_LAX)
    if (job && job->dilation > job->segment)
        return LNET_PLUGIN_OK;
#endif
#if defined(BROKEN_CRASH)
    if (job && job->segment > 0 && job->rows % job->segment != 0 &&
        job->row_end > job->rows / job->segment * job->segment)
        raise(SIGSEGV);
#endif
    int st = ex_run_segment(device, job);
#if defined(BROKEN_WRONG)
    if (st == 0) {
        lnet_plugin_window w;
        lnet_plugin_job_window(job, &w);
        float *out = EX_DATA(job->out);
        for (int64_t b = 0; b < job->batch; b++)
            for (int64_t i = job->row_begin; i < job->row_end; i++)
                out[ex_row(job, w.q_rows, w.q_base, b, i, 0)] += 1e-2f;
    }
#endif
    return st;
}

LNET_PLUGIN_EXPORT const lnet_plugin *lnet_plugin_entry(void);

LNET_PLUGIN_EXPORT const lnet_plugin *lnet_plugin_entry(void)
{
    static lnet_plugin table;
    table = *example_plugin_entry();
    table.name = "broken";
    table.description = "a fixture that breaks the plugin contract (tests/conform)";
    table.run_segment = broken_run_segment;
    table.score = NULL;
    return &table;
}

/* scored.c — two builds of one backend ("scored") with different score()
 * slots, for the loader's rule (the higher score is kept; equal scores:
 * the first found): the vendor example, renamed, its score SCORE. Built
 * as longnet-scored-a (score 1), -b (score 5) and -c (score 5): b is kept
 * although a is found first, and c, equal to b, is found after it. */
#define lnet_plugin_entry example_plugin_entry
#include "../../plugins/example/example_plugin.c"
#undef lnet_plugin_entry

static int scored_score(void)
{
    return SCORE;
}

LNET_PLUGIN_EXPORT const lnet_plugin *lnet_plugin_entry(void);

LNET_PLUGIN_EXPORT const lnet_plugin *lnet_plugin_entry(void)
{
    static lnet_plugin table;
    table = *example_plugin_entry();
    table.name = "scored";
    table.description = "a fixture of the loader's score rule (tests/scored)";
    table.score = scored_score;
    return &table;
}

/* plugin_direct.h — for tests that drive a backend plugin's table directly
 * (bad jobs, row windows, options), without the library in between. */
#ifndef LNET_TEST_PLUGIN_DIRECT_H
#define LNET_TEST_PLUGIN_DIRECT_H

#include "longnet-plugin.h"

/* Opens the module the library loads as backend `name` (the loader records
 * its path; libtool keeps the shared object in .libs/ beside the .la until
 * it is installed) and returns its table, with Check assertions on the way.
 * *module receives the dlopen handle, for dlclose. */
const lnet_plugin *plugin_direct_open(const char *name, void **module);

#endif /* LNET_TEST_PLUGIN_DIRECT_H */

#!/bin/sh
# run.sh — automake's log compiler for the Python tests (tests/python/*.py):
# runs one with configure's Python, the package from the source tree
# (bindings/python) and the library just built (LONGNET_LIBRARY), so that
# nothing installed is tested by mistake.
#
# Skips (77) only where the test cannot run, saying why: no Python with
# NumPy and torch (CI installs python3-numpy and python3-torch through
# scripts/install-deps), or a liblongnet built with a sanitizer
# (scripts/check asan/tsan): its instrumented code needs the sanitizer's
# runtime in the executable, which the system's python does not have.
set -u
test=$1
here=$(cd "$(dirname "$0")" && pwd)
lib=$(pwd)/liblongnet/.libs/liblongnet.so.0
name=$(basename "$test")

if [ -z "${PYTHON:-}" ] || [ "$PYTHON" = : ]; then
    echo "SKIP $name: configure found no Python 3 (give PYTHON=/path/to/python3)"
    exit 77
fi
if ! why=$("$PYTHON" -c 'import numpy, torch' 2>&1); then
    echo "SKIP $name: $PYTHON cannot import numpy and torch (install python3-numpy python3-torch): $why"
    exit 77
fi
if ! why=$("$PYTHON" -c 'import ctypes, sys
try:
    ctypes.CDLL(sys.argv[1])
except OSError as e:
    sys.exit(str(e))' "$lib" 2>&1); then
    case $why in
    *__asan* | *__tsan* | *__ubsan* | *__msan* | *__sanitizer* | *__sancov*)
        echo "SKIP $name: liblongnet is built with a sanitizer, which $PYTHON (not instrumented) cannot load: $why"
        echo "(the plain build's make check runs it)"
        exit 77 ;;
    esac
    echo "FAIL $name: $PYTHON cannot load $lib: $why"
    exit 1
fi
LONGNET_LIBRARY=$lib
PYTHONPATH=$here:$here/../../bindings/python${PYTHONPATH:+:$PYTHONPATH}
PYTHONDONTWRITEBYTECODE=1
export LONGNET_LIBRARY PYTHONPATH PYTHONDONTWRITEBYTECODE
exec "$PYTHON" "$test"

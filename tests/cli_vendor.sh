# cli_vendor.sh — the vendor's whole path, as plugins/example/README.md
# tells it: longnet installed into a staging directory (make install
# DESTDIR=, under the build tree), plugins/example built out of tree with
# only that installation's SDK (pkg-config, PKG_CONFIG_PATH to the staged
# .pc files), installed into the staged plugin directory; then the staged
# `longnet info` lists it, `longnet test --device example` passes, and
# `longnet run --device example` gives the cpu backend's answer, alone and
# beside cpu in a device list.
. "${TESTS_SRCDIR:-.}/cli_lib.sh"

build=${LONGNET_BUILDDIR:-$(dirname "$(dirname "$LONGNET")")}
src=$(dirname "$TESTS_SRCDIR")
stage="$build/tests/vendor-stage"
rm -rf "$stage"
trap 'rm -rf "$tmp" "$stage"' EXIT

if ! command -v pkg-config >/dev/null 2>&1; then
    echo "FAIL: pkg-config is not installed (scripts/install-deps installs it)"
    exit 1
fi

MAKEFLAGS= MFLAGS= ${MAKE:-make} -s --no-print-directory -C "$build" install DESTDIR="$stage" >"$tmp/install.log" 2>&1 || {
    cat "$tmp/install.log"
    echo "FAIL: make install DESTDIR=$stage"
    exit 1
}
pc=$(find "$stage" -name longnet-plugin.pc | head -n 1)
bin=$(find "$stage" -type f -name longnet -perm -u+x | head -n 1)
lib=$(find "$stage" -name 'liblongnet.so*' | head -n 1)
check "the staged install has the SDK's .pc, longnet and liblongnet" \
    test -n "$pc" -a -n "$bin" -a -n "$lib"
# A staged .pc still names the final prefix; --define-prefix takes the
# prefix from where the .pc file lies, so every path is the staged one.
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
PKGC="pkg-config --define-prefix"
plugindir=$($PKGC --variable=plugindir longnet-plugin)
check "the SDK's plugindir lies in the stage" sh -c "case '$plugindir' in '$stage'/*) exit 0;; esac; exit 1"

# Out of tree: a copy of plugins/example alone, nothing of the source tree.
cp -R "$src/plugins/example" "$tmp/example"
chmod -R u+w "$tmp/example"
expect_ok env MAKEFLAGS= MFLAGS= ${MAKE:-make} -s --no-print-directory -C "$tmp/example" PKG_CONFIG="$PKGC" CC="${CC:-cc}" CFLAGS="-O2"
expect_ok env MAKEFLAGS= MFLAGS= ${MAKE:-make} -s --no-print-directory -C "$tmp/example" PKG_CONFIG="$PKGC" install
check "the module is in the staged plugin directory" test -f "$plugindir/longnet-example.so"

# The staged longnet, on the staged library and plugin directory only.
LD_LIBRARY_PATH="$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
LONGNET_PLUGIN_PATH=$plugindir
export LD_LIBRARY_PATH LONGNET_PLUGIN_PATH
"$bin" info >"$out" 2>"$err"
check "longnet info lists the example, loaded" grep -q 'name: example, ABI 2, loaded, 2 devices' "$out"
check "longnet info lists its devices" grep -q '^  example:1  example device 1' "$out"

"$bin" test --device example --quick >"$out" 2>"$err"
rc=$?
check "longnet test --device example passes (exit $rc)" test "$rc" -eq 0
check "... every check of the example ran" grep -q '^longnet test: 8 passed, 0 skipped, 0 failed$' "$out"

cd "$tmp" || exit 99
for x in q k v; do
    "$bin" gen --shape 2,200,4,32 --seed "$(printf %d "'$x")" --out "$x.npy" >/dev/null ||
        { echo "cannot generate inputs"; exit 99; }
done
RUN="--q q.npy --k k.npy --v v.npy --segments 16,64,256 --dilations 1,2,4 --causal --quiet"
expect_ok "$bin" run $RUN --device cpu --out o_cpu.npy --lse l_cpu.npy
expect_ok "$bin" run $RUN --device cpu --kernel reference --out o_ref.npy --lse l_ref.npy
expect_ok "$bin" run $RUN --device example --out o_ex.npy --lse l_ex.npy
expect_ok "$bin" run $RUN --device example,cpu --out o_two.npy --lse l_two.npy
close="$build/tests/npy_close"
# The example's kernel does the cpu reference kernel's arithmetic in its
# order: the same bits.
check "example gives the cpu reference kernel's O, to the bit" cmp o_ex.npy o_ref.npy
check "... and its LSE" cmp l_ex.npy l_ref.npy
check "example gives the cpu backend's O" "$close" o_ex.npy o_cpu.npy 1e-5
check "example gives the cpu backend's LSE" "$close" l_ex.npy l_cpu.npy 1e-5
check "example beside cpu gives the one-device O" "$close" o_two.npy o_ex.npy 1e-5
check "example beside cpu gives the one-device LSE" "$close" l_two.npy l_ex.npy 1e-5
check "the npy_close helper can fail (O against Q)" sh -c "! '$close' o_ex.npy q.npy 1e-5"

finish

# cli_lib.sh — helpers for the `longnet` command's shell tests; sourced, not
# run. POSIX sh only: `make check` runs the tests with $(SHELL), which may be
# dash.
#
# The environment (AM_TESTS_ENVIRONMENT in Makefile.am) gives:
#   LONGNET             absolute path of the built tools/longnet
#   TESTS_SRCDIR        absolute path of tests/ in the source tree
#   LONGNET_GOLDEN_DIR  the golden cases (may be empty or missing)
#
# A test script sources this file, calls expect_ok / expect_fail / check,
# and ends with `finish`.

if test -z "$LONGNET" || ! test -x "$LONGNET"; then
    echo "LONGNET is not set to the built longnet command ('$LONGNET'); skipping"
    exit 77
fi

passed=0
failed=0

# One scratch directory per script, removed however the script ends.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/longnet-cli.XXXXXX") || {
    echo "cannot create a temporary directory"
    exit 99
}
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' HUP INT TERM

out="$tmp/stdout"
err="$tmp/stderr"

pass() {
    passed=$((passed + 1))
    echo "PASS: $1"
}

# fail DESCRIPTION [DETAIL] — also shows what the command wrote, which is
# what one needs to see when reading the test log.
fail() {
    failed=$((failed + 1))
    echo "FAIL: $1"
    if test -n "$2"; then echo "      $2"; fi
    if test -s "$out"; then sed 's/^/      stdout: /' "$out" | head -n 20; fi
    if test -s "$err"; then sed 's/^/      stderr: /' "$err" | head -n 20; fi
}

# check DESCRIPTION COMMAND... — passes when COMMAND (a test, grep, cmp...)
# succeeds. It may read "$out" and "$err" of the last longnet command, so its
# own output goes elsewhere (and is shown if it fails).
check() {
    desc=$1
    shift
    if "$@" >"$tmp/check.log" 2>&1; then
        pass "$desc"
    else
        failed=$((failed + 1))
        echo "FAIL: $desc"
        sed 's/^/      /' "$tmp/check.log" | head -n 20
    fi
}

# expect_ok COMMAND... — exit status 0 and nothing on stderr.
expect_ok() {
    desc="ok: $*"
    "$@" >"$out" 2>"$err"
    rc=$?
    if test "$rc" -ne 0; then
        fail "$desc" "exit status $rc, expected 0"
    elif test -s "$err"; then
        fail "$desc" "unexpected output on stderr"
    else
        pass "$desc"
    fi
}

# expect_fail SUBSTRING COMMAND... — the command fails the way a user should
# see it fail: exit status 1 or 2 (not a crash, which the shell reports as
# 126 and up), exactly one line on stderr, starting with "longnet", and
# containing SUBSTRING (which should be the bad value, so that the message
# is known to name it).
expect_fail() {
    want=$1
    shift
    desc="fails naming '$want': $*"
    last_ok=0
    "$@" >"$out" 2>"$err"
    rc=$?
    lines=$(awk 'END { print NR }' "$err")
    if test "$rc" -ne 1 && test "$rc" -ne 2; then
        fail "$desc" "exit status $rc, expected 1 or 2"
    elif test "$lines" -ne 1; then
        fail "$desc" "$lines lines on stderr, expected exactly 1"
    elif ! head -n 1 "$err" | grep -q '^longnet[ a-z]*: '; then
        fail "$desc" "stderr does not start with 'longnet: ' or 'longnet CMD: '"
    elif ! grep -F -q -e "$want" "$err"; then
        fail "$desc" "stderr does not contain '$want'"
    else
        last_ok=1
        pass "$desc"
    fi
}

# expect_usage_error SUBSTRING COMMAND... — as expect_fail, and also exit
# status 2 with the hint to the help.
expect_usage_error() {
    expect_fail "$@"
    if test "$last_ok" -ne 1; then
        return
    elif test "$rc" -ne 2; then
        fail "usage error exits 2: $*" "exit status $rc"
    elif ! grep -F -q "see 'longnet --help'" "$err"; then
        fail "usage error hints at --help: $*"
    fi
}

# file_size FILE — its size in bytes.
file_size() {
    wc -c <"$1" | tr -d ' '
}

# finish — the summary line, and the exit status automake's harness reads.
finish() {
    echo "$passed passed, $failed failed"
    if test "$failed" -ne 0; then exit 1; fi
    exit 0
}

# Helpers for the integration tests (sourced). CTest sets MPQ (the binary), ART (a scratch
# directory shared by the tests of one run), SRC (the source tree) and PYTHON (Debian's python3
# with torch and h5py).
set -uo pipefail
: "${MPQ:?}" "${ART:?}" "${SRC:?}" "${PYTHON:=/usr/bin/python3}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
FAILS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { echo "ok: $*"; }
finish() { if [ "$FAILS" -ne 0 ]; then echo "$FAILS check(s) failed" >&2; exit 1; fi; echo "all checks passed"; }

# expect_error CODE REGEX OUTPUT_PATH -- command...
# Runs the command; checks the exit code, that stderr is exactly one line matching REGEX with no
# crash markers, and that nothing exists at OUTPUT_PATH ("-" to skip that check).
expect_error() {
  local code=$1 regex=$2 out=$3; shift 4
  local err; err=$(mktemp)
  "$@" >/dev/null 2>"$err"; local rc=$?
  local lines; lines=$(wc -l <"$err")
  local what="$* -> exit $rc: $(head -c 300 "$err")"
  if [ "$rc" -ne "$code" ]; then fail "expected exit $code: $what"
  elif [ "$lines" -ne 1 ]; then fail "expected one line on stderr, got $lines: $what"
  elif ! grep -Eq -- "$regex" "$err"; then fail "stderr does not match /$regex/: $what"
  elif grep -Eqi "terminate called|abort|segmentation|stack trace|what\(\)" "$err"; then fail "crash marker: $what"
  elif [ "$out" != "-" ] && [ -e "$out" ]; then fail "output $out exists after a failed run: $what"
  else pass "$(head -c 160 "$err")"; fi
  rm -f "$err"
}

# A value from `mpq eval` style "key<TAB>value" output.
field() { awk -F'\t' -v k="$1" '$1 == k { print $2 }'; }

#!/usr/bin/env bash
# tests/browser/xhr.sh: the article's XMLHttpRequest program in headless Chromium against soon-serve.
# Usage: xhr.sh SOON_SERVE_BINARY. Exit 0 pass, 1 fail, 77 skip (Chromium cannot run here).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
serve=${1:?usage: xhr.sh path/to/soon-serve}
[ -x "$serve" ] || { echo "xhr.sh: $serve is not an executable" >&2; exit 1; }

skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# ------------------------------------------------------------ Chromium

# Debian's chromium is ~290 MB installed: too much to add to what every CI
# run installs, so this test installs it for itself, where it may.
chromium=$(command -v chromium || true)
if [ -z "$chromium" ]; then
  [ "$(id -u)" -eq 0 ] || skip "chromium is not installed and we are not root to apt-get it"
  command -v apt-get >/dev/null || skip "chromium is not installed and there is no apt-get"
  echo "installing Debian's chromium (apt-get install -y chromium)"
  apt_get() {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -q "$@" >/dev/null
  }
  apt_get install --no-install-recommends chromium ||
    { apt_get update && apt_get install --no-install-recommends chromium; } ||
    skip "apt-get install chromium failed"
  chromium=$(command -v chromium) || skip "chromium installed but not on PATH"
fi

tmp=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# What a container needs: no sandbox (root, no user namespaces), no
# /dev/shm (often 64 MB), its own profile; nothing fetched from outside.
# --virtual-time-budget lets the page's network and callbacks finish before
# --dump-dom prints the DOM, with no wall-clock wait of ours.
browse() {
  timeout 30 "$chromium" --headless=new --no-sandbox --disable-gpu \
    --disable-dev-shm-usage --user-data-dir="$tmp/profile" --no-first-run \
    --no-default-browser-check --disable-extensions --disable-sync \
    --disable-background-networking --disable-component-update \
    --enable-logging=stderr --v=0 --virtual-time-budget=5000 --dump-dom "$1"
}

version=$("$chromium" --version 2>/dev/null || true)
echo "browser: ${version:-$chromium}"
# Whether Chromium starts at all here: the one failure that is a skip.
if ! browse about:blank >"$tmp/blank.html" 2>"$tmp/blank.err" ||
  ! grep -q '<body' "$tmp/blank.html"; then
  tail -n 20 "$tmp/blank.err" >&2
  skip "headless Chromium cannot start here (see its stderr above)"
fi

# ------------------------------------------------------------ the server

# The pages, the article's script, and a plain ASCII file to fetch (ASCII:
# JavaScript's responseText.length counts UTF-16 units, equal to its bytes).
mkdir "$tmp/www"
cp "$here/xhr.html" "$here/missing.html" "$here/article.js" \
  "$here/console.js" "$tmp/www/"
for i in $(seq 1 100); do
  printf 'line %03d of data.txt, which soon-serve sends to the article'"'"'s request\n' "$i"
done >"$tmp/www/data.txt"
size=$(stat -c %s "$tmp/www/data.txt")

# --port 0: a free port, which the first line names. Its stdout is a FIFO
# held open until it exits (a closed reader would be its SIGPIPE).
mkfifo "$tmp/serve.out"
"$serve" --root "$tmp/www" --port 0 >"$tmp/serve.out" &
server=$!
exec 3<"$tmp/serve.out"
if ! read -r -t 10 line <&3 ||
  [[ ! "$line" =~ ^listening\ on\ (http://127\.0\.0\.1:[0-9]+/)$ ]]; then
  fail "soon-serve: no 'listening on' line (got '${line:-}')"
fi
base=${BASH_REMATCH[1]}
echo "soon-serve: $line"

# ------------------------------------------------------------ the pages

# The lines console.log printed, in order, from the DOM's <pre id="console">.
console_lines() {
  sed -n '/<pre id="console">/,/<\/pre>/p' "$1" |
    sed -e 's/.*<pre id="console">//' -e 's/<\/pre>.*//' | sed '/^$/d'
}

# Load page; its console lines must be exactly the expected ones.
check_page() {
  local page=$1 expected=$2 start end got rc l
  start=$(date +%s%N)
  browse "$base$page" >"$tmp/$page.dom" 2>"$tmp/$page.err" && rc=0 || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -n 20 "$tmp/$page.err" >&2
    fail "$page: chromium exited with $rc"
  fi
  end=$(date +%s%N)
  got=$(console_lines "$tmp/$page.dom")
  echo "$page ($(((end - start) / 1000000)) ms in chromium):"
  while IFS= read -r l; do echo "  $l"; done <<<"$got"
  # Chromium's own copy of the lines on stderr, for the log only: its
  # format is Chromium's to change, the DOM's is this test's.
  grep -F 'CONSOLE' "$tmp/$page.err" | sed 's/^/  stderr: /' || true
  if [ "$got" != "$expected" ]; then
    tail -n 20 "$tmp/$page.err" >&2
    fail "$page: expected these lines:
$expected"
  fi
}

lines() { printf 'before making the call\nafter making the call\n%s' "$1"; }
check_page xhr.html "$(lines "Success! $size characters received")"
check_page missing.html "$(lines "Server returned error 404")"

# The bytes soon served for data.txt, from its access log: the same N.
kill -TERM "$server"
wait "$server" || fail "soon-serve exited with $? after SIGTERM"
server=
log=$(cat <&3)
exec 3<&-
grep -q '"GET /xhr.html HTTP/1.1" 200 ' <<<"$log" || fail "no access log line for xhr.html"
grep -q '"GET /missing.txt HTTP/1.1" 404 ' <<<"$log" || fail "no 404 logged for missing.txt"
served=$(sed -n 's/.*"GET \/data.txt HTTP\/1.1" 200 \([0-9]*\)$/\1/p' <<<"$log" | head -n 1)
[ "$served" = "$size" ] ||
  fail "soon-serve logged ${served:-nothing} bytes for data.txt, the page counted $size"
echo "PASS: the article's three lines in order, N = $size = the bytes soon-serve sent; a 404 is a load"

#!/usr/bin/env bash
# Screenshot a poolbert report page in headless Chromium (Debian's `chromium` package), to check
# that the self-contained index.html renders offline.
#
#   scripts/screenshot_report.sh runs/study/report/index.html [out.png] [WIDTH,HEIGHT]
#
# Default output: screenshot.png next to the page; default window 1280,2400.
set -euo pipefail

page=${1:?usage: screenshot_report.sh INDEX_HTML [OUT_PNG] [WIDTH,HEIGHT]}
[[ -f "$page" ]] || { echo "screenshot_report.sh: no such file: $page" >&2; exit 2; }
page=$(cd "$(dirname "$page")" && pwd)/$(basename "$page")
out=${2:-$(dirname "$page")/screenshot.png}
size=${3:-1280,2400}
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[[ -n "$browser" ]] || { echo "screenshot_report.sh: chromium not found (apt-get install -y chromium)" >&2; exit 2; }

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$out"
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --hide-scrollbars --user-data-dir="$profile" --window-size="$size" \
  --screenshot="$out" "file://$page" >/dev/null 2>&1 || true
[[ -s "$out" ]] || { echo "screenshot_report.sh: chromium wrote no screenshot" >&2; exit 1; }
echo "$out"

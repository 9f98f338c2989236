#!/usr/bin/env bash
# Renders the main notices' HTML (the built-in templates) and screenshots each in a phone-width and
# a desktop-width window with headless Chromium (Debian: apt-get install chromium), into docs/emails/.
set -euo pipefail
cd "$(dirname "$0")/.."
html="$(mktemp -d)"
cargo run -q -p factorwatch --example email_samples -- "$html"
for f in "$html"/*.html; do
  n="$(basename "$f" .html)"
  chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=390,1000 \
    --screenshot="docs/emails/$n-phone.png" "file://$f" >/dev/null 2>&1
  chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,820 \
    --screenshot="docs/emails/$n-wide.png" "file://$f" >/dev/null 2>&1
done
rm -rf "$html"
echo "screenshots in docs/emails/"

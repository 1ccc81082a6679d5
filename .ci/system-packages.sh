#!/usr/bin/env bash
# Installs the Debian packages listed in .ci/system-packages.txt that are not installed yet.
# Idempotent: with everything present it runs no apt-get at all. The README's test command
# and .ci/run both start with it, so a fresh machine gets the real servers the tests start.
set -euo pipefail
cd "$(dirname "$0")"
missing=()
while read -r line; do
    pkg="${line%%#*}"
    pkg="${pkg//[[:space:]]/}"
    [[ -z "$pkg" ]] && continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done < system-packages.txt
if ((${#missing[@]})); then
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    echo "installing Debian packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

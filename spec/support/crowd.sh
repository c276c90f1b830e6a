#!/usr/bin/env bash
# The Lua packages many Debian machines already have, which lakebase must live beside.
#   crowd.sh install | remove | status
# `remove` gives the bare machine (lua-dkjson stays: busted needs it); `install` the crowded one.
set -euo pipefail
crowd=(lua-cjson lua-dkjson lua-socket lua-lpeg)
removable=(lua-cjson lua-socket lua-lpeg)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

case "${1:-status}" in
  install)
    missing=()
    for p in "${crowd[@]}"; do installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && exit 0
    echo "crowd: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    ;;
  remove)
    present=()
    for p in "${removable[@]}"; do installed "$p" && present+=("$p"); done
    [ ${#present[@]} -eq 0 ] && exit 0
    echo "crowd: removing ${present[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "${present[@]}" >/dev/null
    ;;
  status)
    for p in "${crowd[@]}"; do
      if installed "$p"; then echo "$p: installed"; else echo "$p: absent"; fi
    done
    ;;
  *) echo "usage: crowd.sh install|remove|status" >&2; exit 2 ;;
esac

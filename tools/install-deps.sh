#!/bin/sh
# Installs the Debian packages named on the command line that are not installed yet.
missing=""
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "clusterlua: missing Debian packages:$missing" >&2
  echo "clusterlua: run 'make deps' as root, or: apt-get install -y$missing" >&2
  exit 1
fi
echo "clusterlua: installing missing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
  echo "clusterlua: apt-get install failed for:$missing" >&2
  exit 1
}

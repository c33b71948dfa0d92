#!/bin/sh
# make bench: installs the Debian packages of the peers clusterlua is measured against
# (etcd 3.4, Erlang/OTP, Serf) when they are missing. Without root, or when apt-get
# fails, it says so and the benchmark marks those rows "unavailable".
pkgs="etcd-server etcd-client erlang-base serf"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "bench: peers missing:$missing (not root: their rows will say unavailable)" >&2
  exit 0
fi
echo "bench: installing the peers to measure against:$missing (apt-get, a minute or two)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
for p in $missing; do
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $p >/dev/null 2>&1 ||
    echo "bench: apt-get install $p failed: its rows will say unavailable" >&2
done
# the etcd-server package may start a system etcd; the benchmark starts its own
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl stop etcd 2>/dev/null || true
fi
exit 0

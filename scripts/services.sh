#!/usr/bin/env bash
# System services the tests use.  up: install (apt, as root on Debian) + start; down: stop what up started.
#   Slurm: a real two-fake-node cluster (scripts/slurm_cluster.sh) with accounting (submitit needs sacct).
#   nginx + promtool (Debian's prometheus): installed for the gateway and alert-rule tests (they start nginx).
#   Java 17: checked (TorchServe's tests start their own servers).
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PKGS="slurm-wlm munge slurmdbd mariadb-server nginx-light prometheus openssl openjdk-17-jre-headless apache2-utils"

have_all() { dpkg -s $APT_PKGS >/dev/null 2>&1; }

install() {
  if have_all; then return; fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "services: missing system packages ($APT_PKGS) and not root on Debian: install them by hand" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # no daemons may start on install here (policy-rc.d); we start them ourselves
  apt-get install -y -qq --no-install-recommends $APT_PKGS >/dev/null
}

up() {
  install
  java -version >/dev/null 2>&1 || { echo "services: java not found (TorchServe needs Java 17)" >&2; return 1; }
  # a second `up` must not wipe the state (and pid files) of daemons still running: stop them first
  SLURM_CI_DIR=/tmp/shipyard-slurm bash scripts/slurm_cluster.sh down >/dev/null
  SLURM_CI_NODES=2 SLURM_CI_ACCT=1 SLURM_CI_DIR=/tmp/shipyard-slurm bash scripts/slurm_cluster.sh up
}

down() {
  SLURM_CI_DIR=/tmp/shipyard-slurm bash scripts/slurm_cluster.sh down || true
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac

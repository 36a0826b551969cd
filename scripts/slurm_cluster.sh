#!/usr/bin/env bash
# Single-machine Slurm cluster for the tests (Debian 12, root): two fake nodes n1, n2 (from shared/slurm-ci.sh).
#   slurm-ci.sh up     # install (if needed) + configure + start + wait until ready + smoke test
#   slurm-ci.sh down   # stop every daemon this script started (by PID file) and wait for exit
# Knobs (env):  SLURM_CI_NODES=2     number of emulated compute nodes (n1..nN, one slurmd each)
#               SLURM_CI_ACCT=1      1 = slurmdbd + MariaDB (sacct works; submitit needs it to see
#                                    jobs that die without a result); 0 = no accounting
#               SLURM_CI_DIR=/tmp/slurm-ci   state, spool, logs, pid files
set -euo pipefail
NODES=${SLURM_CI_NODES:-2}
ACCT=${SLURM_CI_ACCT:-1}
D=${SLURM_CI_DIR:-/tmp/slurm-ci}
CONF=/etc/slurm/slurm.conf

wait_for() {  # wait_for <seconds> <what> <cmd...>
  local t=$1 what=$2; shift 2
  local end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then
      echo "TIMEOUT waiting for $what" >&2
      tail -n 30 "$D"/log/*.log >&2 || true
      return 1
    fi
    sleep 0.2
  done
}
all_idle() { [ "$(sinfo -h -N -o %T | sort -u)" = idle ] && [ "$(sinfo -h -N -o %N | wc -l)" -eq "$NODES" ]; }

up() {
  export DEBIAN_FRONTEND=noninteractive
  local pkgs="slurm-wlm munge"
  [ "$ACCT" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
  # shellcheck disable=SC2086
  if ! dpkg -s $pkgs >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
  fi

  rm -rf "$D"; mkdir -p "$D"/{state,spool,log}
  for i in $(seq 1 "$NODES"); do mkdir -p "$D/spool/n$i"; done
  local cpus mem
  cpus=$(nproc)
  mem=$(awk -v n="$NODES" '/MemTotal/ {print int($2/1024*0.8/n)}' /proc/meminfo)

  # fake node names must resolve (MASTER_ADDR from SLURM_JOB_NODELIST, submitit's hostnames, ...)
  for i in $(seq 1 "$NODES"); do
    grep -qE "^127\.0\.0\.1[[:space:]].*\bn$i\b" /etc/hosts || echo "127.0.0.1 n$i" >> /etc/hosts
  done

  # ---- munge (auth for all Slurm RPCs) ----
  [ -s /etc/munge/munge.key ] || mungekey --create --force
  chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --force --pid-file=/run/munge/munged.pid
  fi
  wait_for 20 munged sh -c 'munge -n | unmunge'

  # ---- slurm.conf ----
  mkdir -p /etc/slurm
  cat > "$CONF" <<EOF
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# requeued jobs wait cred_expire seconds before they may start again (default 120)
AuthInfo=cred_expire=10
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd-%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
SlurmctldPort=6817
# no cgroups needed: process tracking via /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# trust the node lines below instead of probing hardware (lets N fake nodes share the box)
SlurmdParameters=config_overrides
# schedule immediately; sched_interval=1 makes requeued jobs restart ~cred_expire+1 s after requeue
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=1,bf_interval=1
ReturnToService=2
InactiveLimit=0
KillWait=5
MinJobAge=600
SlurmdTimeout=60
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
EOF
  if [ "$ACCT" = 1 ]; then
    cat >> "$CONF" <<EOF
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
EOF
  else
    echo "AccountingStorageType=accounting_storage/none" >> "$CONF"
    echo "JobAcctGatherType=jobacct_gather/none" >> "$CONF"
  fi
  # one slurmd per fake node, all on 127.0.0.1, distinct ports 6821.. (Debian's build has
  # --enable-multiple-slurmd)
  cat >> "$CONF" <<EOF
NodeName=n[1-$NODES] NodeHostname=localhost NodeAddr=127.0.0.1 Port=[6821-$((6820 + NODES))] CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

  # ---- accounting: MariaDB + slurmdbd ----
  if [ "$ACCT" = 1 ]; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    if ! mysqladmin ping >/dev/null 2>&1; then
      /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file=/run/mysqld/mysqld.pid \
        >"$D/log/mariadb.log" 2>&1 &
    fi
    wait_for 60 mariadb mysqladmin ping
    # fresh accounting DB each time: job ids restart at 1 because $D/state was wiped
    mysql -e "DROP DATABASE IF EXISTS slurm_acct_db;
              CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmci';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
    cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
AuthInfo=cred_expire=10
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$D/log/slurmdbd.log
PidFile=$D/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmci
StorageLoc=slurm_acct_db
EOF
    chmod 600 /etc/slurm/slurmdbd.conf
    /usr/sbin/slurmdbd
    wait_for 60 slurmdbd sacctmgr -n show cluster
    sacctmgr -i add cluster ci >/dev/null 2>&1 || true
  fi

  # ---- controller + N slurmd ----
  /usr/sbin/slurmctld -i
  wait_for 30 slurmctld scontrol ping
  for i in $(seq 1 "$NODES"); do /usr/sbin/slurmd -N "n$i"; done
  wait_for 60 "all $NODES nodes idle" all_idle
  # smoke test: one task on every node
  timeout 60 srun -N"$NODES" --ntasks-per-node=1 true
  wait_for 30 "nodes idle after smoke test" all_idle
  sinfo -N -o '%N %T %c %m'
  echo "slurm-ci: up ($NODES nodes, accounting=$ACCT, logs in $D/log)"
}

down() {
  local pids=() f p
  for f in "$D"/slurmd-*.pid "$D/slurmctld.pid" "$D/slurmdbd.pid" /run/mysqld/mysqld.pid /run/munge/munged.pid; do
    [ -s "$f" ] || continue
    p=$(cat "$f")
    case "$(cat /proc/"$p"/comm 2>/dev/null)" in   # never kill a recycled PID
      slurmd|slurmctld|slurmdbd|mariadbd|munged) kill "$p" && pids+=("$p") ;;
    esac
  done
  for p in "${pids[@]}"; do  # wait (max ~30 s each) for clean exit
    for _ in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
  done
  echo "slurm-ci: stopped ${pids[*]:-nothing}"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Install a single-host SLURM (slurm-wlm) and munge from Debian; idempotent.
# The tests start their own daemons with a private slurm.conf
# (tests/slurm_fixture.py); this script only installs the binaries and never
# writes to /etc/slurm or starts anything.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
# Debian puts the daemons in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

if have slurmctld && have slurmd && have munged && have sbatch; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup_slurm: slurm-wlm/munge are missing; install them with: sudo apt-get install slurm-wlm munge" >&2
  exit 1
fi
if ! have apt-get; then
  echo "setup_slurm: no apt-get here; install slurm-wlm and munge with your package manager" >&2
  exit 1
fi
echo "setup_slurm: installing slurm-wlm and munge from Debian" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  slurm-wlm munge >/dev/null
# The fixture creates a key when missing too, but a stock one saves a step.
if [ ! -f /etc/munge/munge.key ] && have mungekey; then
  mungekey -c -f -k /etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
fi

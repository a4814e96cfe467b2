#!/usr/bin/env bash
# Host discovery for elastic jobs (horovodrun --host-discovery-script jobs/discover_hosts.sh).
# Prints "host:slots" for every host of the hostfile that answers ssh now. Horovod runs this about
# once a second: a node that goes down drops out of the job, and one that comes back (or is added
# to the hostfile) joins it at the next commit. Hosts are probed in parallel, each within 5 s.
#     HOSTFILE=jobs/hostfile jobs/discover_hosts.sh
set -uo pipefail
HOSTFILE=${HOSTFILE:-jobs/hostfile}
[[ -f $HOSTFILE ]] || { echo "error: $HOSTFILE not found (set HOSTFILE; see jobs/hostfile.example)" >&2; exit 2; }

probe() {  # host slots
  if ssh -o BatchMode=yes -o ConnectTimeout=5 -o StrictHostKeyChecking=accept-new "$1" true </dev/null \
      >/dev/null 2>&1; then
    echo "$1:$2"
  fi
}

pids=()
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
n=0
while read -r host rest || [[ -n ${host:-} ]]; do
  [[ -z ${host:-} || $host == \#* ]] && continue
  slots=$(sed -n 's/.*slots=\([0-9][0-9]*\).*/\1/p' <<<"${rest:-}")
  n=$((n + 1))
  probe "$host" "${slots:-1}" >"$tmp/$(printf '%06d' "$n")" &
  pids+=($!)
done <"$HOSTFILE"
wait "${pids[@]}" 2>/dev/null
cat "$tmp"/* 2>/dev/null  # hostfile order: rank 0 stays on the first host that is up
exit 0

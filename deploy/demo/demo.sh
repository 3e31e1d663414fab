#!/usr/bin/env bash
# `make demo`: the product's value in a minute, on one machine, no cluster.
# Two runc "pods" laid out as kubelet lays them out (kubepods cgroups), the pods' objects as
# `kubectl get pods -o json` would print them, the agent, and for two users the audit events a real API
# server sends for `kubectl exec` plus the exec itself (a shell that reads a file and makes a connection).
# A third exec has no audit event: someone went around the API server. Then `kubectl exectrace` shows
# who did what. Everything is removed afterwards, also on failure or Ctrl-C.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
AGENT="$ROOT/src/Ebpf.Agent/bin/${CONFIG:-Release}/net10.0/ebpf-agent.dll"
CLI_DIR="$ROOT/src/Ebpf.Cli/bin/${CONFIG:-Release}/net10.0"
[ -f "$AGENT" ] && [ -x "$CLI_DIR/kubectl-exectrace" ] || { echo "demo: build first (make build)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "demo: needs root (BPF and runc)" >&2; exit 2; }
export PATH="$CLI_DIR:$PATH"

WORK=$(mktemp -d /tmp/ebpf-demo.XXXXXX)
GRPC=127.0.0.1:50151 WEBHOOK=127.0.0.1:8543 HEALTH=127.0.0.1:9190 HTTP_PORT=18181
NODE=$(hostname)
AGENT_PID= HTTPD_PID=
CONTAINERS=()
cleanup() {
  set +e
  [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
  [ -n "$HTTPD_PID" ] && kill "$HTTPD_PID" 2>/dev/null
  for c in "${CONTAINERS[@]}"; do runc delete -f "$c" >/dev/null 2>&1; done
  for d in /sys/fs/cgroup/unified/kubepods/besteffort /sys/fs/cgroup/*/kubepods/besteffort; do
    for pod in "$d"/pod"$DEMO_TAG"*; do [ -d "$pod" ] && find "$pod" -depth -type d -exec rmdir {} \; 2>/dev/null; done
  done
  rm -rf "$WORK"
}
DEMO_TAG=$(printf '%08x' $((RANDOM * RANDOM)))
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
uuid() { printf '%s-%04x-4%03x-8%03x-%012x' "$DEMO_TAG" $((RANDOM)) $((RANDOM % 4096)) $((RANDOM % 4096)) $((RANDOM * RANDOM * RANDOM)); }
hex64() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
now() { date -u +%Y-%m-%dT%H:%M:%S.%6NZ; }

# A busybox root filesystem shared (read-only) by the demo containers.
mkdir -p "$WORK/rootfs"/{bin,etc,proc,sys,dev,tmp}
cp /bin/busybox "$WORK/rootfs/bin/"
for a in sh cat wget ls sleep id; do ln -s busybox "$WORK/rootfs/bin/$a"; done
echo "root:x:0:0:root:/root:/bin/sh" > "$WORK/rootfs/etc/passwd"

start_pod() { # name uid containerid hostname
  local bundle="$WORK/$1"; mkdir -p "$bundle"
  echo "$4" > "$bundle/hostname"
  (cd "$bundle" && runc spec)
  python3 - "$bundle" "$2" "$3" "$WORK/rootfs" <<'PY'
import json, sys
bundle, uid, cid, rootfs = sys.argv[1:]
c = json.load(open(f"{bundle}/config.json"))
c["root"] = {"path": rootfs, "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/sleep", "3600"]
c["linux"]["cgroupsPath"] = f"/kubepods/besteffort/pod{uid}/{cid}"
# Host network, as a hostNetwork pod: the demo's web server is on the host's loopback.
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
c["mounts"].append({"destination": "/etc/hostname", "type": "bind", "source": f"{bundle}/hostname", "options": ["bind", "ro"]})
c["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]})
json.dump(c, open(f"{bundle}/config.json", "w"))
PY
  runc run -d -b "$bundle" "$3" >/dev/null </dev/null
  CONTAINERS+=("$3")
}

pod_json() { # ns name uid containerid container
  cat <<JSON
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"$2","namespace":"$1","uid":"$3","resourceVersion":"1","labels":{"app":"$2"}},
 "spec":{"nodeName":"$NODE","serviceAccountName":"default","containers":[{"name":"$5","image":"busybox",
   "livenessProbe":{"exec":{"command":["cat","/etc/hostname"]}}}]},
 "status":{"phase":"Running","podIP":"127.0.0.1","podIPs":[{"ip":"127.0.0.1"}],
   "containerStatuses":[{"name":"$5","containerID":"containerd://$4","ready":true,"state":{"running":{}}}]}}
JSON
}

exec_event() { # auditid stage user group ip ns pod container received stagets
  local uri="/api/v1/namespaces/$6/pods/$7/exec?command=sh&command=-c&command=cat+%2Fetc%2Fhostname%3B+wget+-q+-O-+http%3A%2F%2F127.0.0.1%3A$HTTP_PORT%2F&container=$8&stdin=true&stdout=true&tty=false"
  cat <<JSON
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"$1","stage":"$2","requestURI":"$uri","verb":"create",
 "user":{"username":"$3","groups":["$4","system:authenticated"]},"sourceIPs":["$5"],"userAgent":"kubectl/v1.31.0 (linux/amd64) kubernetes/abcdef",
 "objectRef":{"resource":"pods","namespace":"$6","name":"$7","apiVersion":"v1","subresource":"exec"},
 "responseStatus":{"metadata":{},"code":101},"requestReceivedTimestamp":"$9","stageTimestamp":"${10}"}
JSON
}

post() { curl -fsS -H 'Content-Type: application/json' --data-binary "$1" "http://$WEBHOOK/audit/webhook" >/dev/null; }

say "Two runc pods on node $NODE (kubepods cgroups, as the kubelet lays them out)"
UID_A=$(uuid) UID_B=$(uuid) CID_A=$(hex64) CID_B=$(hex64)
start_pod shop-web "$UID_A" "$CID_A" web-1
start_pod payments-api "$UID_B" "$CID_B" api-1
echo "  shop/web-1       container app  ${CID_A:0:12}  cgroup /kubepods/besteffort/pod$UID_A"
echo "  payments/api-1   container api  ${CID_B:0:12}  cgroup /kubepods/besteffort/pod$UID_B"
printf '{"apiVersion":"v1","kind":"List","items":[%s,%s]}\n' "$(pod_json shop web-1 "$UID_A" "$CID_A" app)" "$(pod_json payments api-1 "$UID_B" "$CID_B" api)" > "$WORK/pods.json"

mkdir -p "$WORK/www" && echo "hello from the demo web server" > "$WORK/www/index.html"
busybox httpd -f -p "127.0.0.1:$HTTP_PORT" -h "$WORK/www" & HTTPD_PID=$!

say "Starting ebpf-agent (BPF programs, pod snapshot, store in $WORK/data)"
cat > "$WORK/agent.yaml" <<YAML
correlation:
  auditWaitWindow: "00:00:08"
YAML
dotnet "$AGENT" run --config "$WORK/agent.yaml" --pods-file "$WORK/pods.json" --data-dir "$WORK/data" --node-name "$NODE" \
  --grpc-listen "$GRPC" --webhook-listen "$WEBHOOK" --health-listen "$HEALTH" > "$WORK/agent.log" 2>&1 & AGENT_PID=$!
for _ in $(seq 60); do curl -fsS "http://$HEALTH/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "http://$HEALTH/readyz" | sed 's/^/  /' || { cat "$WORK/agent.log"; exit 1; }

run_exec() { # user group ip ns pod container containerid
  local id; id=$(cat /proc/sys/kernel/random/uuid); local t0; t0=$(now)
  echo "  $1 ($3): kubectl exec -n $4 $5 -c $6 -- sh -c \"cat /etc/hostname; wget -q -O- http://127.0.0.1:$HTTP_PORT/\""
  runc exec "$7" sh -c "cat /etc/hostname; wget -q -O- http://127.0.0.1:$HTTP_PORT/" | sed 's/^/      | /'
  local t1; t1=$(now)
  # The API server's webhook batches arrive after the fact; the agent joins them to what it already saw.
  post "{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"items\":[$(exec_event "$id" ResponseStarted "$1" "$2" "$3" "$4" "$5" "$6" "$t0" "$t0"),$(exec_event "$id" ResponseComplete "$1" "$2" "$3" "$4" "$5" "$6" "$t0" "$t1")]}"
}

say "Two users run kubectl exec (the audit events reach the agent's webhook afterwards, as batches do)"
run_exec alice@example.com developers 203.0.113.7 shop web-1 app "$CID_A"
run_exec bob@example.com sre 198.51.100.23 payments api-1 api "$CID_B"
say "Someone runs a shell in payments/api-1 without going through the API server (runc exec on the node)"
runc exec "$CID_B" sh -c "id; cat /etc/passwd" | sed 's/^/      | /'

say "Waiting for the audit wait window (8 s) so the unmatched exec is called out"
sleep 10

say "kubectl exectrace sessions"
kubectl exectrace sessions --agent "$GRPC"
for id in $(kubectl exectrace sessions --agent "$GRPC" -o json | python3 -c 'import json,sys; [print(s["id"]) for s in json.load(sys.stdin) if s.get("kind") in ("SESSION_KIND_EXEC","SESSION_KIND_UNATTRIBUTED_EXEC")]'); do
  say "kubectl exectrace show $id"
  kubectl exectrace show "$id" --agent "$GRPC"
done
say "kubectl exectrace findings"
kubectl exectrace findings --agent "$GRPC"
say "curl http://$HEALTH/metrics (excerpt: what was captured, and every place data could have been lost)"
curl -fsS "http://$HEALTH/metrics" | grep -E '^ebpf_(capture_events_total|capture_drops_total|sessions|findings_total|store_records_total|audit_webhook_total\{counter="appended"|grpc_subscriber_dropped_total)' | sed 's/^/  /'
say "Done: the agent, the pods and the data are being removed"

# Helpers shared by the benchmark scripts (sourced, not run).
# Processes started by a script go into `pids` and are killed when it exits.

TICK=$(getconf CLK_TCK)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# Exits unless every command named is on PATH (or is an executable path).
require() { for tool in "$@"; do command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }; done; }
# Waits up to 10 s for 127.0.0.1:PORT to accept connections.
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
# CPU time of PID so far, in clock ticks: user and system, or their sum.
cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
cpu_total() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Peak resident set of PID, KiB.
peak_rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

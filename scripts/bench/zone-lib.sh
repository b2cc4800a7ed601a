# Sourced by the benchmark scripts that need a running demo zone.
# Expects $work and $home; sets $port, $cport (content port) and $ca.

free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

# start_zone FIRST_PORT: a new zone with a content port, started, with a
# stored administrator credential and no download latencies.
start_zone() {
  port=$(free_port "$1")
  cport=$(free_port $((port + 1)))
  printf 'bench-admin-pw\n' >"$work/pw"
  zconfigure -c NewZone -Z --zone-name bench --admin-password-file "$work/pw" --port "$port" --dns localhost --ip 127.0.0.1 >/dev/null
  zconfigure -D server.content-port="$cport" >/dev/null
  zconfigure -c Start --action start >/dev/null
  ZMAN_USER=Administrator ZMAN_PASSWORD=bench-admin-pw zman admin-store-credential >/dev/null
  ca=$home/conf/zone-ca.pem
}

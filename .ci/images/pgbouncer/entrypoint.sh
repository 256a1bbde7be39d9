#!/usr/bin/env bash
# The environment contract of edoburu/pgbouncer's entrypoint, for the local stand-in. Without an
# /etc/pgbouncer/pgbouncer.ini of the container's own, it writes one from:
#   DB_HOST (required), DB_PORT (5432), DB_USER, DB_PASSWORD, DB_NAME (default `*`: every database),
#   AUTH_TYPE (md5), POOL_MODE, MAX_CLIENT_CONN, DEFAULT_POOL_SIZE, MIN_POOL_SIZE, RESERVE_POOL_SIZE,
#   MAX_DB_CONNECTIONS, SERVER_RESET_QUERY, IGNORE_STARTUP_PARAMETERS (extra_float_digits),
#   LISTEN_ADDR (0.0.0.0), LISTEN_PORT (5432), ADMIN_USERS (postgres), VERBOSE;
# DB_USER / DB_PASSWORD go to the userlist (the password in clear text for plain and scram-sha-256,
# as an md5 hash otherwise).
set -euo pipefail
dir=/etc/pgbouncer
if [ ! -f "$dir/pgbouncer.ini" ]; then
  : "${DB_HOST:?set DB_HOST (the Postgres server PgBouncer forwards to)}"
  auth_type="${AUTH_TYPE:-md5}"
  touch "$dir/userlist.txt"
  chmod 600 "$dir/userlist.txt"
  if [ -n "${DB_USER:-}" ] && [ -n "${DB_PASSWORD:-}" ]; then
    if [ "$auth_type" = plain ] || [ "$auth_type" = scram-sha-256 ]; then
      pass="$DB_PASSWORD"
    else
      pass="md5$(printf '%s%s' "$DB_PASSWORD" "$DB_USER" | md5sum | cut -d ' ' -f 1)"
    fi
    printf '"%s" "%s"\n' "$DB_USER" "$pass" >>"$dir/userlist.txt"
  fi
  opt() { if [ -n "${2:-}" ]; then printf '%s = %s\n' "$1" "$2"; fi; }
  {
    printf '[databases]\n'
    printf '%s = host=%s port=%s%s\n' "${DB_NAME:-*}" "$DB_HOST" "${DB_PORT:-5432}" "${DB_USER:+ auth_user=$DB_USER}"
    printf '\n[pgbouncer]\n'
    printf 'listen_addr = %s\nlisten_port = %s\n' "${LISTEN_ADDR:-0.0.0.0}" "${LISTEN_PORT:-5432}"
    printf 'unix_socket_dir =\nauth_file = %s/userlist.txt\nauth_type = %s\n' "$dir" "$auth_type"
    printf 'admin_users = %s\n' "${ADMIN_USERS:-postgres}"
    printf 'ignore_startup_parameters = %s\n' "${IGNORE_STARTUP_PARAMETERS:-extra_float_digits}"
    opt pool_mode "${POOL_MODE:-}"
    opt max_client_conn "${MAX_CLIENT_CONN:-}"
    opt default_pool_size "${DEFAULT_POOL_SIZE:-}"
    opt min_pool_size "${MIN_POOL_SIZE:-}"
    opt reserve_pool_size "${RESERVE_POOL_SIZE:-}"
    opt max_db_connections "${MAX_DB_CONNECTIONS:-}"
    opt server_reset_query "${SERVER_RESET_QUERY:-}"
    opt verbose "${VERBOSE:-}"
  } >"$dir/pgbouncer.ini"
  echo "wrote $dir/pgbouncer.ini"
fi
exec "$@"

#!/bin/bash
# First start: make the data directory, root's password, the database and its user (from
# the MARIADB_* variables, as the official image does), and a local user for the health
# check. Then run MariaDB in the foreground.
set -euo pipefail
datadir=/var/lib/mysql
socket=/run/mysqld/mysqld.sock

# the values go into SQL string literals: datasock init's are URL-safe, refuse the rest
for name in MARIADB_ROOT_PASSWORD MARIADB_DATABASE MARIADB_USER MARIADB_PASSWORD; do
    case "${!name:-}" in
        *[\'\"\\\`]*) echo "entrypoint: $name holds quotes or backslashes: not supported" >&2
                     exit 1;;
    esac
done

if [ ! -d "$datadir/mysql" ]; then
    : "${MARIADB_ROOT_PASSWORD:?MARIADB_ROOT_PASSWORD is not set}"
    echo "entrypoint: initialising $datadir" >&2
    mariadb-install-db --datadir="$datadir" --auth-root-authentication-method=normal \
        --skip-test-db --skip-name-resolve >/dev/null
    mariadbd --skip-networking --socket="$socket" --datadir="$datadir" &
    pid=$!
    for _ in $(seq 60); do
        mariadb --socket="$socket" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
        sleep 1
    done
    health_password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    {
        echo "DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');"
        echo "DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';"
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$MARIADB_ROOT_PASSWORD';"
        echo "CREATE USER 'root'@'%' IDENTIFIED BY '$MARIADB_ROOT_PASSWORD';"
        echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
        echo "CREATE USER 'healthcheck'@'localhost' IDENTIFIED BY '$health_password';"
        echo "CREATE USER 'healthcheck'@'127.0.0.1' IDENTIFIED BY '$health_password';"
        echo "GRANT USAGE ON *.* TO 'healthcheck'@'localhost', 'healthcheck'@'127.0.0.1';"
        if [ -n "${MARIADB_DATABASE:-}" ]; then
            echo "CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;"
        fi
        if [ -n "${MARIADB_USER:-}" ]; then
            echo "CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY '${MARIADB_PASSWORD:?}';"
            if [ -n "${MARIADB_DATABASE:-}" ]; then
                echo "GRANT ALL ON \`$MARIADB_DATABASE\`.* TO '$MARIADB_USER'@'%';"
            fi
        fi
        echo "FLUSH PRIVILEGES;"
    } | mariadb --socket="$socket" -uroot
    umask 077
    printf '[mariadb-client]\nuser=healthcheck\npassword=%s\nprotocol=tcp\nhost=127.0.0.1\n' \
        "$health_password" > "$datadir/.my-healthcheck.cnf"
    kill "$pid"
    wait "$pid"
    echo "entrypoint: $datadir ready" >&2
fi
if [ "${1:-}" = mariadbd ]; then
    shift
    exec mariadbd --datadir="$datadir" --socket="$socket" "$@"
fi
exec "$@"

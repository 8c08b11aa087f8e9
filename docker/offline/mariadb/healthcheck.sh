#!/bin/sh
# The official image's health check, for the options the stack uses:
#   --connect               a client connects over TCP
#   --innodb_initialized    and InnoDB is ready
set -eu
sql="SELECT 1"
for option in "$@"; do
    case "$option" in
        --connect) ;;
        --innodb_initialized)
            sql="SELECT 1 FROM information_schema.ENGINES WHERE ENGINE = 'InnoDB' AND SUPPORT IN ('YES', 'DEFAULT')";;
        *) echo "healthcheck.sh: unknown option $option" >&2; exit 2;;
    esac
done
out=$(mariadb --defaults-extra-file=/var/lib/mysql/.my-healthcheck.cnf -N -B -e "$sql")
[ "$out" = 1 ]

#!/bin/sh
# The container's entrypoint: `serialtwin run` with the shard this replica serves.
#
#   SERIALTWIN_SHARD=K/N   serve shard K (from 0) of N, as written (compose: one service per shard)
#   SERIALTWIN_SHARDS=N    serve shard K of N, K the ordinal that ends the hostname (a
#                          StatefulSet's pod serialtwin-2 is shard 2)
#   neither                serve the whole config
#   SERIALTWIN_BIN         the serialtwin binary (default: serialtwin on $PATH)
#
# SERIALTWIN_SHARD wins when both are set. The arguments go to `serialtwin run` (the image's
# CMD: the config file). A replica that cannot tell which shard it is refuses to start rather
# than serve another replica's devices a second time.
set -eu

bin=${SERIALTWIN_BIN:-serialtwin}

refuse() {
    echo "serialtwin entrypoint: $*" >&2
    exit 64
}

# Whether $1 is a whole number written in digits only.
is_number() {
    case $1 in
        '' | *[!0-9]*) return 1 ;;
        *) return 0 ;;
    esac
}

# $1 without its leading zeros ("0" stays "0"): the shell's arithmetic reads 010 as octal.
decimal() {
    digits=$1
    while [ "${digits#0}" != "$digits" ] && [ -n "${digits#0}" ]; do
        digits=${digits#0}
    done
    printf '%s' "$digits"
}

if [ -n "${SERIALTWIN_SHARD:-}" ]; then
    # As written: `serialtwin run` checks K/N itself and says what is wrong with it.
    shard=$SERIALTWIN_SHARD
elif [ -n "${SERIALTWIN_SHARDS:-}" ]; then
    is_number "$SERIALTWIN_SHARDS" ||
        refuse "SERIALTWIN_SHARDS=$SERIALTWIN_SHARDS is not a number of shards"
    count=$(decimal "$SERIALTWIN_SHARDS")
    # Lengths before values, so that no number overflows the shell's arithmetic (serialtwin
    # itself takes at most 4096 shards).
    [ ${#count} -le 9 ] || refuse "SERIALTWIN_SHARDS=$count is too many shards"
    [ "$count" -ge 1 ] || refuse "SERIALTWIN_SHARDS=$count: there is at least one shard"
    # HOSTNAME is the environment variable Docker and Kubernetes set (the pod's name), not a
    # shell variable; uname -n is the same name where it is missing.
    # shellcheck disable=SC3028
    host=${HOSTNAME:-$(uname -n)}
    ordinal=${host##*-}
    if [ "$ordinal" = "$host" ] || ! is_number "$ordinal"; then
        refuse "hostname $host does not end in -<ordinal> as a StatefulSet pod's does" \
            "(serialtwin-2): run this as a StatefulSet, or set SERIALTWIN_SHARD=K/N"
    fi
    ordinal=$(decimal "$ordinal")
    if [ ${#ordinal} -gt 9 ] || [ "$ordinal" -ge "$count" ]; then
        refuse "hostname $host is shard $ordinal, but SERIALTWIN_SHARDS=$count has shards" \
            "0 to $((count - 1)): the replicas and SERIALTWIN_SHARDS must agree"
    fi
    shard=$ordinal/$count
else
    exec "$bin" run "$@"
fi

exec "$bin" run --shard "$shard" "$@"

#!/usr/bin/env bash
# Register SuperNode public keys with a running SuperLink (started with
# --enable-supernode-auth), waiting for it to come up. Safe to run again: a key
# that is already registered counts as done. Used by the compose file's
# `register` service; on a server, the `flwr supernode register` commands that
# make-certs.sh prints do the same one key at a time.
set -euo pipefail

usage() {
    cat <<EOF
Usage: $(basename "$0") [-w SECONDS] SUPERLINK_ADDRESS CA_CERT PUBLIC_KEY...

  SUPERLINK_ADDRESS  host:port of the SuperLink (its certificate must name host)
  CA_CERT            the CA certificate that signed the SuperLink's (ca.crt)
  PUBLIC_KEY         a SuperNode's public key (<out>/supernodes/<name>.pub); the
                     SuperNode is registered under <name>
  -w SECONDS         how long to wait for the SuperLink to answer (default: 120)
EOF
}

die() {
    echo "register-supernodes: error: $*" >&2
    exit 1
}

wait_seconds=120
while getopts ":w:h" option; do
    case "$option" in
        w) wait_seconds="$OPTARG" ;;
        h) usage; exit 0 ;;
        :) usage >&2; die "option -$OPTARG needs a value" ;;
        *) usage >&2; die "unknown option -$OPTARG" ;;
    esac
done
shift $((OPTIND - 1))
if [[ "$#" -lt 3 ]]; then
    usage >&2
    die "give the SuperLink address, the CA certificate and at least one public key"
fi
[[ "$wait_seconds" =~ ^[0-9]+$ ]] || die "-w SECONDS must be a whole number, got '$wait_seconds'"
address="$1"
ca_cert="$2"
shift 2
[[ "$address" =~ ^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]+$ ]] \
    || die "SUPERLINK_ADDRESS must be host:port, got '$address'"
[[ -f "$ca_cert" ]] || die "CA certificate '$ca_cert' not found"
command -v flwr >/dev/null || die "'flwr' not found: activate the environment that has Flower"
for key in "$@"; do
    [[ -f "$key" ]] || die "public key '$key' not found"
    grep -q "^ecdsa-sha2-nistp" "$key" \
        || die "'$key' is not an ECDSA public key in OpenSSH format (<name>.pub from make-certs.sh)"
done

# A private Flower configuration: one connection, nothing else.
export FLWR_HOME
FLWR_HOME="$(mktemp -d)"
trap 'rm -rf "$FLWR_HOME"' EXIT
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1
cat >"$FLWR_HOME/config.toml" <<EOF
[superlink]
default = "target"

[superlink.target]
address = "$address"
root-certificates = "$(cd "$(dirname "$ca_cert")" && pwd)/$(basename "$ca_cert")"
EOF

deadline=$((SECONDS + wait_seconds))
for key in "$@"; do
    name="$(basename "$key" .pub)"
    while true; do
        if output="$(flwr supernode register "$key" target --name "$name" 2>&1)"; then
            node_id="?"
            if [[ "$output" =~ SuperNode\ ([0-9]+) ]]; then node_id="${BASH_REMATCH[1]}"; fi
            echo "registered         $name (node id $node_id)"
            break
        elif [[ "$output" == *"already in use"* ]]; then
            echo "already registered $name"
            break
        elif [[ "$output" == *"unavailable"* ]] && [[ "$SECONDS" -lt "$deadline" ]]; then
            sleep 2
        else
            die "could not register '$key' with $address:
$output
(If the SuperLink is running, check that $ca_cert signed its certificate and
that the certificate names '${address%:*}': flwr reports TLS failures as
'unavailable'.)"
        fi
    done
done

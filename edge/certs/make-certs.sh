#!/usr/bin/env bash
# Make everything a secured BLOSSOM federation needs: a CA, the SuperLink's TLS
# certificate, and one ECDSA P-384 key pair per SuperNode (Flower's SuperNode
# authentication). Prints the `flwr supernode register` commands to run next.
#
# Files written (existing ones are kept, so a later run can add SuperNodes):
#   <out>/ca.crt                   CA certificate: every SuperNode and flwr CLI user
#   <out>/ca.key                   CA private key: keep it off the devices
#   <out>/server.pem, server.key   SuperLink certificate and key: the server only
#   <out>/supernodes/<name>        SuperNode private key (OpenSSH): that device only
#   <out>/supernodes/<name>.pub    its public key: registered on the SuperLink
set -euo pipefail

usage() {
    cat <<EOF
Usage: $(basename "$0") [-o OUT_DIR] [-d DAYS] [-p PORT] [-c CONNECTION] SERVER_ADDRESS NODE_NAME...

  SERVER_ADDRESS  the SuperLink's address as the SuperNodes reach it: an IP or a
                  DNS name, or several joined by commas (192.168.1.10,superlink).
                  localhost, 127.0.0.1 and ::1 are always added: the SuperLink's
                  own ServerApp process connects to it over loopback, with TLS.
  NODE_NAME       one name per SuperNode (letters, digits, '.', '_', '-').

  -o OUT_DIR      where to write (default: $(dirname "$0")/generated)
  -d DAYS         certificate validity in days (default: 365)
  -p PORT         SuperLink port, for the printed connection (default: 9093)
  -c CONNECTION   flwr connection name, for the printed commands (default: blossom)
EOF
}

die() {
    echo "make-certs: error: $*" >&2
    exit 1
}

out_dir="$(dirname "$0")/generated"
days=365
port=9093
connection=blossom
while getopts ":o:d:p:c:h" option; do
    case "$option" in
        o) out_dir="$OPTARG" ;;
        d) days="$OPTARG" ;;
        p) port="$OPTARG" ;;
        c) connection="$OPTARG" ;;
        h) usage; exit 0 ;;
        :) usage >&2; die "option -$OPTARG needs a value" ;;
        *) usage >&2; die "unknown option -$OPTARG" ;;
    esac
done
shift $((OPTIND - 1))
if [[ "$#" -lt 2 ]]; then
    usage >&2
    die "give the server address and at least one SuperNode name"
fi
[[ "$days" =~ ^[1-9][0-9]*$ ]] || die "-d DAYS must be a positive integer, got '$days'"
[[ "$port" =~ ^[1-9][0-9]*$ ]] && [[ "$port" -le 65535 ]] \
    || die "-p PORT must be 1-65535, got '$port'"
for tool in openssl ssh-keygen; do
    command -v "$tool" >/dev/null \
        || die "'$tool' not found: install it (Debian/Ubuntu: apt-get install openssl openssh-client)"
done

server_address="$1"
shift
node_names=("$@")

# "IP:<address>" or "DNS:<name>" for a subject alternative name.
san_for() {
    if [[ "$1" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || "$1" == *:* ]]; then
        [[ "$1" =~ ^[0-9a-fA-F:.]+$ ]] || die "'$1' is not an IP address"
        echo "IP:$1"
    elif [[ "$1" =~ ^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$ ]]; then
        echo "DNS:$1"
    else
        die "'$1' is neither an IP address nor a DNS name"
    fi
}

# The given addresses, then loopback.
IFS=',' read -r -a addresses <<<"$server_address"
addresses+=(localhost 127.0.0.1 ::1)
sans=()
for address in "${addresses[@]}"; do
    san="$(san_for "$address")"
    [[ " ${sans[*]} " == *" $san "* ]] || sans+=("$san")
done
first_address="${addresses[0]}"
if [[ "$first_address" == *:* ]]; then first_address="[$first_address]"; fi
san_list=$(IFS=','; echo "${sans[*]}")

for name in "${node_names[@]}"; do
    [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] \
        || die "SuperNode name '$name' may hold only letters, digits, '.', '_', '-'"
done

mkdir -p "$out_dir/supernodes"
out_dir="$(cd "$out_dir" && pwd)"
umask 077

new_p384_key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$1" 2>/dev/null
}

if [[ -f "$out_dir/ca.crt" ]] && [[ -f "$out_dir/ca.key" ]]; then
    echo "kept     $out_dir/ca.crt (existing CA)"
else
    new_p384_key "$out_dir/ca.key"
    openssl req -x509 -new -key "$out_dir/ca.key" -sha384 -days "$days" \
        -subj "/O=BLOSSOM/CN=BLOSSOM federation CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$out_dir/ca.crt"
    echo "wrote    $out_dir/ca.crt, ca.key"
fi

if [[ -f "$out_dir/server.pem" ]] && [[ -f "$out_dir/server.key" ]]; then
    for address in "${addresses[@]}"; do
        san="$(san_for "$address")"
        check="-checkhost"
        if [[ "$san" == IP:* ]]; then check="-checkip"; fi
        openssl x509 -in "$out_dir/server.pem" -noout "$check" "$address" \
            | grep -q " does match " || die "$out_dir/server.pem exists but does \
not cover '$address'. Delete server.pem and server.key to issue one for \
'$san_list' (then restart the SuperLink)."
    done
    echo "kept     $out_dir/server.pem (existing, covers $server_address)"
else
    new_p384_key "$out_dir/server.key"
    extensions="$(mktemp)"
    trap 'rm -f "$extensions" "$out_dir/server.csr"' EXIT
    cat >"$extensions" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = $san_list
EOF
    openssl req -new -key "$out_dir/server.key" -subj "/O=BLOSSOM/CN=${addresses[0]}" \
        -out "$out_dir/server.csr"
    openssl x509 -req -in "$out_dir/server.csr" -CA "$out_dir/ca.crt" \
        -CAkey "$out_dir/ca.key" -CAcreateserial -days "$days" -sha384 \
        -extfile "$extensions" -out "$out_dir/server.pem" 2>/dev/null
    echo "wrote    $out_dir/server.pem, server.key ($san_list)"
fi
openssl verify -x509_strict -CAfile "$out_dir/ca.crt" "$out_dir/server.pem" >/dev/null \
    || die "server.pem does not verify against ca.crt"

for name in "${node_names[@]}"; do
    key="$out_dir/supernodes/$name"
    if [[ -f "$key" ]] && [[ -f "$key.pub" ]]; then
        echo "kept     $key (existing key pair)"
    else
        rm -f "$key" "$key.pub"
        ssh-keygen -q -t ecdsa -b 384 -N "" -C "blossom-supernode-$name" -f "$key"
        echo "wrote    $key, $key.pub"
    fi
done
chmod 644 "$out_dir/ca.crt" "$out_dir/server.pem" "$out_dir"/supernodes/*.pub

cat <<EOF

Next:
1. Start the SuperLink (--host 0.0.0.0: reachable from the devices, not only
   loopback; --database: registered SuperNodes survive a restart; any file its
   user may write):
     flower-superlink --host 0.0.0.0 --port $port \\
       --ssl-ca-certfile $out_dir/ca.crt --ssl-certfile $out_dir/server.pem \\
       --ssl-keyfile $out_dir/server.key --enable-supernode-auth \\
       --disable-runtime-dependency-installation \\
       --database /var/lib/blossom/superlink.db
2. Add this connection to \$FLWR_HOME/config.toml (default ~/.flwr/config.toml):
     [superlink.$connection]
     address = "$first_address:$port"
     root-certificates = "$out_dir/ca.crt"
3. Register each SuperNode's public key (the SuperLink must be running). Each
   prints the node id that SuperNode will have: note it next to the name, since
   \`flwr supernode list\` shows node ids, not these --name values:
EOF
for name in "${node_names[@]}"; do
    echo "     flwr supernode register $out_dir/supernodes/$name.pub $connection --name $name"
done
cat <<EOF
   (or all at once, waiting for the SuperLink to come up:
     $(dirname "$0")/register-supernodes.sh $first_address:$port $out_dir/ca.crt $out_dir/supernodes/*.pub)
4. Copy ca.crt and supernodes/<name> (the private key) to each device; start it with
     --superlink $first_address:$port --root-certificates ca.crt --auth-supernode-private-key <name>
   (SuperNodes sharing one host: also a distinct --port each; the default is 9094)
EOF

#!/usr/bin/env bash
# make-certs.sh — local CA + server (and optional client) certificates for Sluice.
#
# Usage: certs/make-certs.sh [--out DIR] [--days N] [--client NAME] [NAME_OR_IP...]
#
# Writes into DIR (default: the directory of this script):
#   ca.pem, ca.key          local CA (ECDSA P-256, 3650 days); reused if both already exist
#   server.pem              leaf certificate followed by the CA certificate (PEM chain)
#   server.key              leaf private key (mode 0600)
#   client-NAME.pem/.key    with --client NAME: client certificate (clientAuth) for mTLS
#
# Every NAME_OR_IP becomes a subjectAltName (IPv4/IPv6 addresses as IP:, anything else
# as DNS:). Without any, the SANs are localhost, 127.0.0.1, ::1 and `hostname -f`.
# Only `openssl` is required.
set -euo pipefail

CA_DAYS=3650
LEAF_DAYS=825

prog=$(basename "$0")
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    cat <<EOF
Usage: $prog [--out DIR] [--days N] [--client NAME] [NAME_OR_IP...]

Creates a local CA (ca.pem, ca.key; reused when both already exist in DIR) and a
server certificate (server.pem = leaf + CA chain, server.key) for Sluice's HEC listener.

Options:
  --out DIR       output directory (default: $script_dir)
  --days N        validity of the server/client certificates in days (default: $LEAF_DAYS;
                  a new CA is valid for $CA_DAYS days)
  --client NAME   also issue client-NAME.pem / client-NAME.key (extendedKeyUsage
                  clientAuth) for mutual TLS; may be given more than once
  -h, --help      show this help

NAME_OR_IP      host names (DNS) or IPv4/IPv6 addresses for subjectAltName.
                Default: localhost 127.0.0.1 ::1 and the output of 'hostname -f'.
EOF
}

die() {
    echo "$prog: error: $*" >&2
    exit 1
}

out_dir=$script_dir
clients=()
names=()

while [[ $# -gt 0 ]]; do
    case $1 in
        -h | --help)
            usage
            exit 0
            ;;
        --out | --days | --client)
            [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"
            opt=$1
            val=$2
            shift 2
            ;;
        --out=* | --days=* | --client=*)
            opt=${1%%=*}
            val=${1#*=}
            [[ -n $val ]] || die "$opt needs a value"
            shift
            ;;
        --)
            shift
            names+=("$@")
            break
            ;;
        -*)
            die "unknown option: $1 (see --help)"
            ;;
        *)
            names+=("$1")
            shift
            continue
            ;;
    esac
    case $opt in
        --out) out_dir=$val ;;
        --days)
            [[ $val =~ ^[0-9]+$ && $val -ge 1 ]] || die "--days must be a positive integer, got '$val'"
            LEAF_DAYS=$val
            ;;
        --client)
            [[ $val =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] ||
                die "--client NAME may only contain letters, digits, '.', '_' and '-', got '$val'"
            clients+=("$val")
            ;;
    esac
done

command -v openssl >/dev/null 2>&1 || die "openssl not found in PATH"

# ---------------------------------------------------------------------------
# Subject alternative names

is_ipv4() {
    local ip=$1 octet octets
    [[ $ip =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
    IFS=. read -r -a octets <<<"$ip"
    for octet in "${octets[@]}"; do
        ((10#$octet <= 255)) || return 1
    done
}

is_ipv6() {
    # Syntax is checked loosely here; openssl rejects malformed addresses when signing.
    [[ $1 == *:* && $1 =~ ^[0-9A-Fa-f:.]+$ ]]
}

is_dns() {
    local label='[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
    [[ ${#1} -le 253 && $1 =~ ^(\*\.)?$label(\.$label)*$ ]]
}

if [[ ${#names[@]} -eq 0 ]]; then
    host_fqdn=$(hostname -f 2>/dev/null || hostname 2>/dev/null || uname -n)
    host_fqdn=${host_fqdn%.}
    names=(localhost 127.0.0.1 ::1)
    if [[ -n $host_fqdn ]] && is_dns "$host_fqdn"; then
        names+=("$host_fqdn")
    else
        echo "$prog: warning: host name '$host_fqdn' is not a valid DNS name; not adding it" >&2
    fi
fi

san_lines=()
san_list=()
dns_i=0
ip_i=0
first_dns=""
declare -A seen=()
for raw in "${names[@]}"; do
    n=$raw
    # Accept "[::1]" and a trailing dot on a fully qualified name.
    [[ $n =~ ^\[(.*)\]$ ]] && n=${BASH_REMATCH[1]}
    n=${n%.}
    if is_ipv4 "$n" || is_ipv6 "$n"; then
        key="IP:${n,,}"
        [[ -n ${seen[$key]:-} ]] && continue
        ip_i=$((ip_i + 1))
        san_lines+=("IP.$ip_i = $n")
    elif [[ $n =~ ^[0-9.]+$ ]]; then
        die "'$raw' looks like an IPv4 address but is not a valid one"
    elif is_dns "$n"; then
        n=${n,,}
        key="DNS:$n"
        [[ -n ${seen[$key]:-} ]] && continue
        dns_i=$((dns_i + 1))
        san_lines+=("DNS.$dns_i = $n")
        [[ -z $first_dns ]] && first_dns=$n
    else
        die "'$raw' is neither a host name nor an IP address"
    fi
    seen[$key]=1
    san_list+=("$key")
done
[[ ${#san_lines[@]} -gt 0 ]] || die "no subjectAltName to put in the certificate"

# The subject CN is informational (clients check subjectAltName); keep it short.
server_cn=${first_dns:-${san_list[0]#IP:}}
[[ ${#server_cn} -le 64 ]] || server_cn="sluice"

# ---------------------------------------------------------------------------
# Work in a private temporary directory inside DIR; files are moved into place
# only after every certificate was issued and verified (all or nothing).

mkdir -p -- "$out_dir"
out_dir=$(cd -- "$out_dir" && pwd)
umask 077
work=$(mktemp -d "$out_dir/.make-certs.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

cnf=$work/openssl.cnf
{
    cat <<'EOF'
[req]
distinguished_name = req_dn
prompt = no
utf8 = yes

[req_dn]

[ext_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ext_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = @server_alt_names

[ext_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[server_alt_names]
EOF
    printf '%s\n' "${san_lines[@]}"
} >"$cnf"

# Keep the user's OpenSSL configuration out of the way.
export OPENSSL_CONF=$cnf

new_key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -pkeyopt ec_param_enc:named_curve -out "$1" 2>/dev/null
}

serial() {
    # 127-bit positive random serial.
    local hex
    hex=$(openssl rand -hex 16)
    printf '0x%x%s' $((0x${hex:0:1} & 7)) "${hex:1}"
}

# ---------------------------------------------------------------------------
# CA: reuse when both files exist, refuse to overwrite half of a pair.

ca_pem=$out_dir/ca.pem
ca_key=$out_dir/ca.key
written=()
move_src=()
move_dst=()

if [[ -e $ca_pem && -e $ca_key ]]; then
    openssl x509 -in "$ca_pem" -noout 2>/dev/null || die "$ca_pem is not a PEM certificate"
    openssl x509 -in "$ca_pem" -noout -text 2>/dev/null | grep -q 'CA:TRUE' ||
        die "$ca_pem is not a CA certificate (basicConstraints CA:TRUE missing)"
    cert_pub=$(openssl x509 -in "$ca_pem" -noout -pubkey)
    key_pub=$(openssl pkey -in "$ca_key" -pubout 2>/dev/null) || die "cannot read private key $ca_key"
    [[ $cert_pub == "$key_pub" ]] || die "$ca_key does not match $ca_pem"
    openssl x509 -in "$ca_pem" -noout -checkend 0 >/dev/null ||
        die "the existing CA $ca_pem has expired; move ca.pem/ca.key away to create a new CA"
    ca_status="reused"
    sign_pem=$ca_pem
    sign_key=$ca_key
elif [[ -e $ca_pem || -e $ca_key ]]; then
    die "found only one of $ca_pem and $ca_key; refusing to overwrite it (move it away or restore the other file)"
else
    ca_subject="/O=Sluice/CN=Sluice local CA $(hostname 2>/dev/null || uname -n) $(date -u +%Y-%m-%d)"
    new_key "$work/ca.key"
    openssl req -new -x509 -config "$cnf" -key "$work/ca.key" -subj "$ca_subject" \
        -days "$CA_DAYS" -sha256 -set_serial "$(serial)" -extensions ext_ca -out "$work/ca.pem"
    chmod 0644 "$work/ca.pem"
    chmod 0600 "$work/ca.key"
    move_src+=("$work/ca.key" "$work/ca.pem")
    move_dst+=("$ca_key" "$ca_pem")
    ca_status="created"
    sign_pem=$work/ca.pem
    sign_key=$work/ca.key
fi

leaf_seconds=$((LEAF_DAYS * 86400))
if ! openssl x509 -in "$sign_pem" -noout -checkend "$leaf_seconds" >/dev/null; then
    echo "$prog: warning: the CA expires before the new certificates ($(openssl x509 -in "$sign_pem" -noout -enddate | cut -d= -f2));" \
        "clients will reject them once the CA has expired" >&2
fi

# issue NAME SUBJECT EXT_SECTION -> $work/NAME.pem (leaf only), $work/NAME.key
issue() {
    local name=$1 subject=$2 ext=$3
    new_key "$work/$name.key"
    openssl req -new -config "$cnf" -key "$work/$name.key" -subj "$subject" -out "$work/$name.csr"
    if ! openssl x509 -req -in "$work/$name.csr" -CA "$sign_pem" -CAkey "$sign_key" \
        -set_serial "$(serial)" -days "$LEAF_DAYS" -sha256 \
        -extfile "$cnf" -extensions "$ext" -out "$work/$name.pem" 2>"$work/openssl.err"; then
        cat "$work/openssl.err" >&2
        die "openssl could not sign the $name certificate (nothing was written)"
    fi
    openssl verify -CAfile "$sign_pem" "$work/$name.pem" >/dev/null ||
        die "the new $name certificate does not verify against the CA (nothing was written)"
}

# stage NAME CHAIN: append the CA certificate when CHAIN=yes, schedule the move into DIR.
stage_pair() {
    local name=$1 chain=$2
    if [[ $chain == yes ]]; then
        cat "$work/$name.pem" "$sign_pem" >"$work/$name.chain.pem"
        mv -f -- "$work/$name.chain.pem" "$work/$name.pem"
    fi
    chmod 0644 "$work/$name.pem"
    chmod 0600 "$work/$name.key"
    move_src+=("$work/$name.key" "$work/$name.pem")
    move_dst+=("$out_dir/$name.key" "$out_dir/$name.pem")
}

issue server "/O=Sluice/CN=$server_cn" ext_server
stage_pair server yes

for c in ${clients[@]+"${clients[@]}"}; do
    issue "client-$c" "/O=Sluice/CN=$c" ext_client
    stage_pair "client-$c" no
done

# CA first; each key before its certificate.
for i in "${!move_src[@]}"; do
    mv -f -- "${move_src[$i]}" "${move_dst[$i]}"
    written+=("${move_dst[$i]}")
done

# ---------------------------------------------------------------------------

echo "CA ($ca_status): $ca_pem"
echo "  $(openssl x509 -in "$ca_pem" -noout -subject)"
echo "  expires: $(openssl x509 -in "$ca_pem" -noout -enddate | cut -d= -f2)"
echo "  $(openssl x509 -in "$ca_pem" -noout -fingerprint -sha256)"
echo "Server certificate: $out_dir/server.pem (leaf + CA), key: $out_dir/server.key"
echo "  subjectAltName: $(IFS=,; echo "${san_list[*]}" | sed 's/,/, /g')"
echo "  expires: $(openssl x509 -in "$out_dir/server.pem" -noout -enddate | cut -d= -f2)"
for c in ${clients[@]+"${clients[@]}"}; do
    echo "Client certificate: $out_dir/client-$c.pem, key: $out_dir/client-$c.key (CN=$c)"
done
echo
echo "Written:"
printf '  %s\n' "${written[@]}"
echo
echo "Verify:  (cd '$out_dir' && openssl verify -CAfile ca.pem server.pem)"
echo "Sluice:  [server] tls_cert = \"$out_dir/server.pem\", tls_key = \"$out_dir/server.key\""
if [[ ${#clients[@]} -gt 0 ]]; then
    echo "mTLS:    [server] client_ca = \"$ca_pem\""
fi
echo "Clients trust $ca_pem (e.g. curl --cacert ca.pem). Keep ca.key private."

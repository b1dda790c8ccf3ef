#!/usr/bin/env bash
# Development PKI and secrets for deploy/compose: a CA, one certificate per Kafka node (kafka-1..3), an admin client
# certificate (mTLS, for the user/ACL job), SCRAM passwords and the broker's own keys. Everything goes to
# deploy/compose/secrets/ (gitignored), or to the folder given as the first argument.
#
# Existing files are kept: rerunning never rotates a key by accident (a new linkage key would break linkage of
# every event already published). Delete a file to have it made again.
set -euo pipefail
umask 077

out="${1:-$(cd "$(dirname "$0")" && pwd)/secrets}"
days="${CERT_DAYS:-825}"
nodes=(kafka-1 kafka-2 kafka-3)
mkdir -p "$out"
cd "$out"

key() { [ -f "$1" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
random() { openssl rand -base64 "$1" | tr -d '\n'; }
password() { openssl rand -hex 24; }

if [ ! -f ca.crt ]; then
  key ca.key
  openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/O=mash-broker/CN=mash-broker development CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.crt
fi

# leaf NAME EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]: key, certificate and a PEM keystore (key then chain) for Kafka.
leaf() {
  local name=$1 eku=$2 san=${3:-}
  mkdir -p "$name"
  [ -f "$name/$name.crt" ] && return 0
  key "$name/$name.key"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyAgreement"
    echo "extendedKeyUsage=$eku"
    if [ -n "$san" ]; then echo "subjectAltName=$san"; fi
  } > "$name/ext.cnf"
  openssl req -new -key "$name/$name.key" -subj "/O=mash-broker/CN=$name" -out "$name/$name.csr"
  openssl x509 -req -in "$name/$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days "$days" \
    -extfile "$name/ext.cnf" -out "$name/$name.crt" 2>/dev/null
  cat "$name/$name.key" "$name/$name.crt" ca.crt > "$name/$name.pem"
  rm -f "$name/$name.csr" "$name/ext.cnf"
}

for node in "${nodes[@]}"; do
  leaf "$node" "serverAuth,clientAuth" "DNS:$node,DNS:localhost"
done
leaf admin "clientAuth"

[ -f admin/admin.properties ] || cat > admin/admin.properties <<PROPS
# Kafka command-line tools as the super user "admin" over the mTLS BROKER listener (port 9094).
security.protocol=SSL
ssl.keystore.type=PEM
ssl.keystore.location=/certs/admin/admin.pem
ssl.truststore.type=PEM
ssl.truststore.location=/certs/ca.crt
PROPS

if [ ! -f postgres.env ]; then
  pg=$(password)
  printf 'POSTGRES_USER=mash\nPOSTGRES_DB=mash\nPOSTGRES_PASSWORD=%s\n' "$pg" > postgres.env
  printf 'MASH_AUDIT_URL=postgresql://mash:%s@postgres:5432/mash\nMASH_STORE_URL=postgresql://mash:%s@postgres:5432/mash\n' \
    "$pg" "$pg" > database.env
fi
if [ ! -f mash-broker.env ]; then
  {
    echo "MASH_KAFKA_SASL_PASSWORD=$(password)"
    echo "MASH_LINKAGE_KEY=$(random 32)"
    echo "MASH_MASK_KEY=$(random 32)"
    echo "MASH_MASTER_KEY=$(random 32)"
  } > mash-broker.env
fi

chmod 600 ./*.key ./*.env ./*/*.key ./*/*.pem
chmod 644 ca.crt ./*/*.crt
echo "development certificates and secrets are in $out (never commit them)"

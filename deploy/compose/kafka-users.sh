#!/usr/bin/env bash
# Runs once in the apache/kafka image as the super user "admin" (mTLS on the BROKER listener): creates the SCRAM
# credential of the broker's principal and its ACLs. Idempotent: rerunning replaces the credential with the same one.
set -euo pipefail
: "${MASH_KAFKA_SASL_PASSWORD:?set in secrets/mash-broker.env by make-certs.sh}"
bin=/opt/kafka/bin
admin=(--bootstrap-server kafka-1:9094 --command-config /certs/admin/admin.properties)
prefix="${MASH_TOPIC_PREFIX:-sg}"

"$bin/kafka-configs.sh" "${admin[@]}" --alter --entity-type users --entity-name mash-broker \
  --add-config "SCRAM-SHA-512=[iterations=8192,password=${MASH_KAFKA_SASL_PASSWORD}]"

# The broker's principal: its own topics (by prefix), its consumer groups, and cluster metadata.
"$bin/kafka-acls.sh" "${admin[@]}" --add --allow-principal User:mash-broker \
  --operation Read --operation Write --operation Describe --operation DescribeConfigs --operation Create \
  --topic "$prefix." --resource-pattern-type prefixed
"$bin/kafka-acls.sh" "${admin[@]}" --add --allow-principal User:mash-broker \
  --operation Read --operation Describe --group mash-broker. --resource-pattern-type prefixed
# Exactly-once share workers: each worker instance's transactional id is <share group>.<worker>.<instance>, under
# the same prefix as the broker's consumer groups (broker/service/share.py).
"$bin/kafka-acls.sh" "${admin[@]}" --add --allow-principal User:mash-broker \
  --operation Write --operation Describe --transactional-id mash-broker. --resource-pattern-type prefixed
"$bin/kafka-acls.sh" "${admin[@]}" --add --allow-principal User:mash-broker --operation Describe --cluster
echo "SCRAM user and ACLs for mash-broker are in place"

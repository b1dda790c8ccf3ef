"""The imperative shell: the runtime (Kafka, keys, stores), intake, share workers, delivery reads."""

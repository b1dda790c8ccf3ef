"""Operations tooling: the configuration reference, deployment topology (topics, ACLs) and health checks."""

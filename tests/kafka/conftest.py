"""Apache Kafka for the tests of what only it does (transactions, fencing, the doctor's report): the session's one
node (tests/integration/conftest.py `apache_bootstrap`), not a JVM of each test's own."""

from tests.integration.conftest import apache_bootstrap  # noqa: F401

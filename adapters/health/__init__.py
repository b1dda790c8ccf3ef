"""Health adapters: FHIR R4 UK Core (JSON and XML)."""

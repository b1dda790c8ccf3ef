"""Who is calling and what they may do: principals, roles and the API key list.

Below the service layer (the service opens the key list; HTTP, the CLI and the service all name principals), so
nothing here imports FastAPI or anything above. broker/api/auth.py and broker/api/principal.py re-export these.
"""

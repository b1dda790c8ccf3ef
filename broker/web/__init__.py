"""Web pages served by the broker: the information governance (IG) page and its API router."""

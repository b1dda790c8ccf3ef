"""The `mash-broker` command line."""

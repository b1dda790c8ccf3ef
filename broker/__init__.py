"""mash-broker: interoperability broker for multi-agency child safeguarding."""

__version__ = "0.1.0"

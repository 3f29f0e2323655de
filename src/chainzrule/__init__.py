"""ChainzRule."""

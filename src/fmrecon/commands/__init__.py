"""One module per CLI verb (see fmrecon.cli)."""

"""Per-domain routing: discovery and validation, the build manifest, lazy mounting, docs."""

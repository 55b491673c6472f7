"""Cross-cutting HTTP plumbing: problem details, privacy-aware logging, limits, health."""

"""Candidate sources written by the recipe in docs/architecture.md, loaded through
``ServingConfig.source_modules`` the way a user's own package would be."""

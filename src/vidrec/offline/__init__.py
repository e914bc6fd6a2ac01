"""The offline pipeline: data → features → models → serving artefacts, as one command."""

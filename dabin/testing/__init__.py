"""Artifacts shaped like the ones users bring (published weights, dataset replicas), for tests and rehearsals."""

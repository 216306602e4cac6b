"""Training, evaluation and export of the mid-level -> emotion model (needs the ``train`` extra)."""

"""The library API: the image listing, ingest from the pipeline, and the thumbnail backfill."""

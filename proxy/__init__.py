"""The edge thumbnail proxy: signed URLs, a pyvips pipeline, cache tiers, warm-up."""

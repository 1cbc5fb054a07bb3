"""open_clip model profiles, model loading and the frozen image-embedding cache."""

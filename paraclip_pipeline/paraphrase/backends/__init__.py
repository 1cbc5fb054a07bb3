"""Paraphrase backends; each module imports its heavy dependency only when built."""

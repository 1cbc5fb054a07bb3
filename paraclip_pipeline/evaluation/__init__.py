"""Benchmarks (STS, paraphrased retrieval, ARO, zero-shot retrieval) and report rendering."""

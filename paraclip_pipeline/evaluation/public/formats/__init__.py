"""One loader per upstream file format; each reads any split of its format and raises
``BenchmarkDataError`` naming the file and line on malformed input."""

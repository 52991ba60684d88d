"""Benchmarks: they print their figures; they are not tests (see Makefile `bench`)."""

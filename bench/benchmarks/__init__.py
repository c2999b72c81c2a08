"""Measurements, never asserted in tests: the profiler, the performance benchmarks, startup and
overhead timings, and the memory claim. The top floor: may import every floor below."""

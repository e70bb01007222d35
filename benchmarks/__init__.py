"""Speed and quality measurements; figures in docs/BENCHMARKS.md."""

"""`ns eval`: predictions over labeled sets, reports, robustness suites and their metrics."""

"""Performance tools (issue 5): the benchmark suite, the FM-UNETR feature cache
(:mod:`fmrecon.perf.cache`) and the peak-memory estimate (:mod:`fmrecon.perf.memory`)."""

"""Production readiness: The ML Test Score (Breck et al., IEEE Big Data 2017) computed from the graph's evidence."""

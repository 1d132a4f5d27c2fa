"""Reports a thesis cites: evaluation, SOTA comparison, error analysis, draft material, readiness."""

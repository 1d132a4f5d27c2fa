"""The stage library: training, evaluation, judges, thesis reports, data. Built on the kernel."""

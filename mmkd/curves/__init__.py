"""From a sweep's files to tables, plots and a report. Reads Tune's files directly: never imports Ray."""

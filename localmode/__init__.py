"""Local mode: the `datadominion` command, its orchestration loop, the data generator and the
in-process Spark job runner. It sits on top: it uses the core (datadominion), the job
(emr_jobs) and local adapters; nothing below imports it."""

"""EMR Serverless entry point: put the shipped dependencies on the path, then run the job.

The dependencies archive (``spark.archives=<job-deps.zip>#deps``) unpacks into ./deps in
the driver's working directory; it must be on sys.path before datadominion imports pydantic.
"""

import os
import sys

_DEPS = os.path.abspath("deps")
if os.path.isdir(_DEPS) and _DEPS not in sys.path:
    sys.path.insert(0, _DEPS)

from emr_jobs.summary_job import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    sys.exit(main())

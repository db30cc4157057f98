import sys

from stevedore_jobs.cli import main

sys.exit(main())

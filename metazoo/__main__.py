import sys

from metazoo.cli import main

sys.exit(main())

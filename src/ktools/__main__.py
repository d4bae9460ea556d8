import sys

from ktools.cli import main

sys.exit(main())

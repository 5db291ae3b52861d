import sys

from edgeskd.cli import main

sys.exit(main())

import sys

from ditmos.cli import main

sys.exit(main())

import sys

from slimda_nas.cli import main

sys.exit(main())

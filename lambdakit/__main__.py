import sys

from lambdakit.commands import main

sys.exit(main())

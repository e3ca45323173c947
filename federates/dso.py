"""``dso_<k>`` federate: one distribution network (see :mod:`federates.grid`)."""

import sys

from federates.grid import factory
from federates.runtime import main

if __name__ == "__main__":
    sys.exit(main(factory))

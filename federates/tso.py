"""``tso`` federate: transmission network and system imbalance (:mod:`federates.grid`)."""

import sys

from federates.grid import factory
from federates.runtime import main

if __name__ == "__main__":
    sys.exit(main(factory))

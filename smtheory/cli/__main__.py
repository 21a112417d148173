"""``python -m smtheory.cli …``: the ``smtheory`` program (compilation cache on; ``os._exit`` after an interrupt)."""
import sys

from smtheory.cli.app import main

if __name__ == "__main__":
    sys.exit(main())

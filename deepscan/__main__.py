"""``python -m deepscan``: the same as the ``deepscan`` command."""

from deepscan.cli import main

if __name__ == "__main__":
    main()

"""``python -m cli``: the same as the ``provisioner`` command."""

from cli.main import main

main()

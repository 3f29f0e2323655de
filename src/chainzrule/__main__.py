"""``python -m chainzrule`` runs the ``chainzrule`` command."""

from chainzrule.cli import main

main()

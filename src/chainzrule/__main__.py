"""``python -m chainzrule`` runs the ``chainzrule`` command."""

from chainzrule.console import main

main()

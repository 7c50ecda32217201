"""`python -m secateurs` runs the command line."""

from secateurs.cli import main

main()

"""`python -m app.cli`, the same as the `cleanwindow` command."""

from app.cli import main

main()

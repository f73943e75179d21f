"""Command-line interface (Typer): commands parse arguments and print; the library returns data."""

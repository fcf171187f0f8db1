"""``python -m payerbridge`` runs the CLI."""

from payerbridge.cli.main import main

# Guarded as a spawned process's main module must be (multiprocessing skips a package's
# ``__main__`` today, but a guard does not depend on it).
if __name__ == "__main__":
    main()

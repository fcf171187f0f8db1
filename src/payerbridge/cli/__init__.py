"""The ``payerbridge`` command line."""

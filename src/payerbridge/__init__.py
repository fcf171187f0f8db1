"""payerbridge: a payer-to-payer exchange platform (CMS-0057-F, HL7 Da Vinci HRex and PDex)."""

__all__ = ["__version__"]

__version__ = "0.1.0"

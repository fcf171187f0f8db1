"""What the people who run payerbridge watch: the dashboard's series, the progress of
bulk jobs and onboardings, each partner's recent exchanges (ADR 0035)."""

from payerbridge.oversight.model import Chart, Period, Series, Window, window_for
from payerbridge.oversight.ports import Oversight

__all__ = ["Chart", "Oversight", "Period", "Series", "Window", "window_for"]

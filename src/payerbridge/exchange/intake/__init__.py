"""An exchange submitted, and the member's opt-in it runs under."""

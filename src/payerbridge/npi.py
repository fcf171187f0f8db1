"""National Provider Identifier check (pure): how partners and consents name organizations."""

__all__ = ["is_valid_npi"]


def is_valid_npi(value: str) -> bool:
    """NPI check digit: Luhn over the 9 digits prefixed with 80840 (CMS NPI standard)."""
    if len(value) != 10 or not value.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed("80840" + value)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0

"""National Provider Identifier check (pure): how partners and consents name organizations."""

__all__ = ["is_valid_npi", "npi_check_digit"]


def npi_check_digit(base: str) -> int:
    """Luhn check digit over ``80840`` followed by the first nine NPI digits (CMS standard)."""
    total = 0
    for position, char in enumerate(reversed("80840" + base)):
        digit = int(char)
        if position % 2 == 0:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return (10 - total % 10) % 10


def is_valid_npi(value: str) -> bool:
    """Ten digits whose last is the check digit of the first nine."""
    if len(value) != 10 or not value.isdigit():
        return False
    return npi_check_digit(value[:9]) == int(value[9])

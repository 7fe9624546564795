"""ISO 4217 currencies (active alphabetic codes and their minor units) and amount parsing.

Pure data and arithmetic, no I/O of its own. Amounts enter the API as decimal strings in the
major unit ("199.00") and are kept as integer minor units (19900) on the log: no floating point
anywhere.
Precious metals, SDR and testing codes (XAU, XDR, XTS, XXX ...) have no minor unit and are not
accepted for purchases. The list itself is the `iso4217` package's copy of ISO's table.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from iso4217 import Currency

# Withdrawn since this service first accepted them (BGN: Bulgaria joined the euro in 2026; ANG:
# replaced by XCG in 2025); still accepted so that clients sending them keep working.
_WITHDRAWN = {"ANG": 2, "BGN": 2}
MINOR_UNITS: dict[str, int] = {
    **_WITHDRAWN,
    **{currency.code: currency.exponent for currency in Currency if currency.exponent is not None},
}
AMOUNT = re.compile(r"^[0-9]{1,15}(\.[0-9]{1,4})?$")
MAX_MINOR = 10**15


class InvalidAmount(ValueError):
    """The amount or currency is not acceptable; the message says why (field, reason)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def currency_code(value: str) -> str:
    """Returns the upper-cased ISO 4217 code; raises InvalidAmount for unknown codes."""
    code = value.strip().upper()
    if code not in MINOR_UNITS:
        raise InvalidAmount("currency", f"{value!r} is not an ISO 4217 currency code")
    return code


def to_minor(amount: str, currency: str) -> int:
    """Returns a positive decimal amount in minor units of `currency` (a valid code)."""
    text = amount.strip()
    if text.startswith("-"):
        raise InvalidAmount("amount", "must not be negative")
    if not AMOUNT.match(text):
        raise InvalidAmount("amount", f"{amount!r} is not a decimal number like 199.00")
    exponent = MINOR_UNITS[currency]
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidAmount("amount", f"{amount!r} is not a decimal number") from None
    minor = value.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise InvalidAmount("amount", f"{currency} has {exponent} decimal places")
    if minor <= 0:
        raise InvalidAmount("amount", "must be greater than zero")
    if minor >= MAX_MINOR:
        raise InvalidAmount("amount", "is too large")
    return int(minor)


def to_decimal(minor: int, currency: str) -> str:
    """Returns minor units as a decimal string with the currency's digits ("199.00")."""
    exponent = MINOR_UNITS.get(currency, 2)
    value = Decimal(minor).scaleb(-exponent)
    return f"{value:.{exponent}f}"

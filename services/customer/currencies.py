"""ISO 4217 currencies (active alphabetic codes and their minor units) and amount parsing.

Pure data and arithmetic, no I/O. Amounts enter the API as decimal strings in the major unit
("199.00") and are kept as integer minor units (19900) on the log: no floating point anywhere.
Precious metals, SDR and testing codes (XAU, XDR, XTS, XXX ...) have no minor unit and are not
accepted for purchases.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# Codes with a minor unit other than 2 (ISO 4217 list one), then the two-digit ones.
_ZERO_DIGITS = (
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "ISK",
    "JPY",
    "KMF",
    "KRW",
    "PYG",
    "RWF",
    "UGX",
    "UYI",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
)
_THREE_DIGITS = (
    "BHD",
    "IQD",
    "JOD",
    "KWD",
    "LYD",
    "OMR",
    "TND",
)
_FOUR_DIGITS = (
    "CLF",
    "UYW",
)
_TWO_DIGITS = (
    "AED",
    "AFN",
    "ALL",
    "AMD",
    "ANG",
    "AOA",
    "ARS",
    "AUD",
    "AWG",
    "AZN",
    "BAM",
    "BBD",
    "BDT",
    "BGN",
    "BMD",
    "BND",
    "BOB",
    "BOV",
    "BRL",
    "BSD",
    "BTN",
    "BWP",
    "BYN",
    "BZD",
    "CAD",
    "CDF",
    "CHE",
    "CHF",
    "CHW",
    "CNY",
    "COP",
    "COU",
    "CRC",
    "CUP",
    "CVE",
    "CZK",
    "DKK",
    "DOP",
    "DZD",
    "EGP",
    "ERN",
    "ETB",
    "EUR",
    "FJD",
    "FKP",
    "GBP",
    "GEL",
    "GHS",
    "GIP",
    "GMD",
    "GTQ",
    "GYD",
    "HKD",
    "HNL",
    "HTG",
    "HUF",
    "IDR",
    "ILS",
    "INR",
    "IRR",
    "JMD",
    "KES",
    "KGS",
    "KHR",
    "KPW",
    "KYD",
    "KZT",
    "LAK",
    "LBP",
    "LKR",
    "LRD",
    "LSL",
    "MAD",
    "MDL",
    "MGA",
    "MKD",
    "MMK",
    "MNT",
    "MOP",
    "MRU",
    "MUR",
    "MVR",
    "MWK",
    "MXN",
    "MXV",
    "MYR",
    "MZN",
    "NAD",
    "NGN",
    "NIO",
    "NOK",
    "NPR",
    "NZD",
    "PAB",
    "PEN",
    "PGK",
    "PHP",
    "PKR",
    "PLN",
    "QAR",
    "RON",
    "RSD",
    "RUB",
    "SAR",
    "SBD",
    "SCR",
    "SDG",
    "SEK",
    "SGD",
    "SHP",
    "SLE",
    "SOS",
    "SRD",
    "SSP",
    "STN",
    "SVC",
    "SYP",
    "SZL",
    "THB",
    "TJS",
    "TMT",
    "TOP",
    "TRY",
    "TTD",
    "TWD",
    "TZS",
    "UAH",
    "USD",
    "USN",
    "UYU",
    "UZS",
    "VED",
    "VES",
    "WST",
    "XCD",
    "XCG",
    "YER",
    "ZAR",
    "ZMW",
    "ZWG",
)
_EXPONENTS = {
    **dict.fromkeys(_ZERO_DIGITS, 0),
    **dict.fromkeys(_THREE_DIGITS, 3),
    **dict.fromkeys(_FOUR_DIGITS, 4),
}
MINOR_UNITS: dict[str, int] = {**dict.fromkeys(_TWO_DIGITS, 2), **_EXPONENTS}
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

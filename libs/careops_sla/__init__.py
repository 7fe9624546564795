"""SLA policy and business calendars: targets per channel x priority x tier, in business time.

The package is the pure shared kernel: `calendar` (business hours and holidays), `policy` (the
target grid) and `clock` (one ticket's SLA clocks) read no clock and do no I/O. `parsing` reads
the YAML policy file with pydantic; its names are re-exported here but imported only on first
use, so the domain code that imports this package never loads pydantic or YAML.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import holidays as holidays  # careops_sla.holidays: the library the calendars consult

from careops_sla.calendar import ALL_DAY as ALL_DAY
from careops_sla.calendar import FULL_DAY as FULL_DAY
from careops_sla.calendar import MAX_CLOSED_DAYS as MAX_CLOSED_DAYS
from careops_sla.calendar import WEEKDAYS as WEEKDAYS
from careops_sla.calendar import BusinessCalendar as BusinessCalendar
from careops_sla.calendar import Intervals as Intervals
from careops_sla.calendar import PolicyError as PolicyError
from careops_sla.calendar import Span as Span
from careops_sla.calendar import _holidays_for as _holidays_for
from careops_sla.clock import Clock as Clock
from careops_sla.clock import TicketClocks as TicketClocks
from careops_sla.policy import CHANNELS as CHANNELS
from careops_sla.policy import DEFAULT_PAUSING_HOLD_REASONS as DEFAULT_PAUSING_HOLD_REASONS
from careops_sla.policy import DEFAULT_WARN_RATIO as DEFAULT_WARN_RATIO
from careops_sla.policy import HOLD_REASONS as HOLD_REASONS
from careops_sla.policy import PRIORITIES as PRIORITIES
from careops_sla.policy import TICKET_TYPES as TICKET_TYPES
from careops_sla.policy import TIERS as TIERS
from careops_sla.policy import Override as Override
from careops_sla.policy import SlaPolicy as SlaPolicy
from careops_sla.policy import SlaTargets as SlaTargets

if TYPE_CHECKING:
    from careops_sla.parsing import default_policy as default_policy
    from careops_sla.parsing import load_policy as load_policy
    from careops_sla.parsing import parse_calendar as parse_calendar
    from careops_sla.parsing import parse_duration as parse_duration
    from careops_sla.parsing import parse_policy as parse_policy
    from careops_sla.parsing import parse_policy_text as parse_policy_text
    from careops_sla.parsing import policy_text as policy_text

_PARSING = frozenset(
    {
        "default_policy",
        "load_policy",
        "parse_calendar",
        "parse_duration",
        "parse_policy",
        "parse_policy_text",
        "policy_text",
    }
)


def __getattr__(name: str) -> Any:
    """Returns a name of `careops_sla.parsing`, importing it on first use."""
    if name in _PARSING:
        return getattr(importlib.import_module("careops_sla.parsing"), name)
    raise AttributeError(f"module 'careops_sla' has no attribute {name!r}")

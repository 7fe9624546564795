"""Telling affected customers (004 §7: the contact chain to affected customers): message
templates as data (Chinese and English), and their rendering from an incident's public facts.

A template's text may name {incident_id}, {headline} and {statement} (the latest published
statement, in the template's language; English falls back to the source wording). Nothing else
of the incident reaches a customer."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

from incident.domain.incident import Incident, PublicStatement

TEMPLATE_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PLACEHOLDERS = frozenset({"incident_id", "headline", "statement"})
NEEDS_STATEMENT = frozenset({"headline", "statement"})
MAX_SUBJECT = 200
MAX_BODY = 5_000
# The customer tiers customer-profile segments by (careops_published.customer.TIERS).
SEGMENT = re.compile(r"^[a-z][a-z_]{0,39}$")
MAX_SEGMENTS = 10


@dataclass(frozen=True)
class CustomerTemplate:
    """A message to affected customers in Chinese (the source documents' language) and
    English; customer-profile sends the one of the customer's locale."""

    template_id: str
    subject: str
    body: str
    subject_en: str
    body_en: str


@dataclass(frozen=True)
class NoticeTemplates:
    """One revision of the templates (policy kind `notice_templates`): its label and templates."""

    version: str
    templates: Mapping[str, CustomerTemplate]


@dataclass(frozen=True)
class RenderedNotice:
    subject: str
    body: str
    subject_en: str
    body_en: str


def placeholders(text: str) -> set[str]:
    """Returns the {names} a template text uses (ValueError on a malformed brace)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def validate_templates(templates: Mapping[str, CustomerTemplate]) -> list[tuple[str, str]]:
    """Returns the violations of a template set: ids, required texts, lengths, placeholders."""
    violations: list[tuple[str, str]] = []
    for template_id, template in templates.items():
        path = f"templates.{template_id}"
        if not TEMPLATE_ID.fullmatch(template_id):
            violations.append((path, "an id like first_notice"))
        for name, limit in (
            ("subject", MAX_SUBJECT),
            ("body", MAX_BODY),
            ("subject_en", MAX_SUBJECT),
            ("body_en", MAX_BODY),
        ):
            text = getattr(template, name)
            if not text.strip():
                violations.append((f"{path}.{name}", "must not be empty"))
                continue
            if len(text) > limit:
                violations.append((f"{path}.{name}", f"must be at most {limit} characters"))
            try:
                unknown = placeholders(text) - PLACEHOLDERS
            except ValueError as exc:
                violations.append((f"{path}.{name}", f"malformed placeholder: {exc}"))
                continue
            if unknown:
                known = ", ".join(sorted(PLACEHOLDERS))
                violations.append(
                    (f"{path}.{name}", f"unknown placeholder {sorted(unknown)[0]}; known: {known}")
                )
    return violations


def needs_statement(template: CustomerTemplate) -> bool:
    """True when the template quotes the public statement (so one must be published)."""
    texts = (template.subject, template.body, template.subject_en, template.body_en)
    return any(placeholders(text) & NEEDS_STATEMENT for text in texts)


def render(
    template: CustomerTemplate, incident: Incident, statement: PublicStatement | None
) -> RenderedNotice:
    """Returns the template filled from the incident's public facts."""
    zh = {
        "incident_id": incident.incident_id,
        "headline": statement.headline if statement else "",
        "statement": statement.text if statement else "",
    }
    en = {
        "incident_id": incident.incident_id,
        "headline": (statement.headline_en or statement.headline) if statement else "",
        "statement": (statement.text_en or statement.text) if statement else "",
    }
    return RenderedNotice(
        template.subject.format(**zh),
        template.body.format(**zh),
        template.subject_en.format(**en),
        template.body_en.format(**en),
    )

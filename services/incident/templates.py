"""The customer message templates (docs/incidents.md, "Telling customers") as versioned data:
policy kind `notice_templates` (docs/policies.md), a YAML document
`{version, templates: {id: {subject, body, subject_en, body_en}}}` checked when put (unknown
keys, empty texts, unknown placeholders, each located). `CAREOPS_NOTICE_TEMPLATES_FILE` (default
the packaged file) seeds revision 1 and is what applies until one is put."""

from __future__ import annotations

from typing import Annotated

from careops_platform.config_files import (
    ConfigModel,
    EmptyDict,
    FieldError,
    Text,
    parse_document,
    read_text,
)
from pydantic import model_validator as model_check

from incident import domain as d

PACKAGE = "incident"
TEMPLATES_DEFAULT = "customer_templates_default.yaml"


class NoticeTemplatesError(ValueError):
    """A templates document is invalid; the message starts with the offending key."""


class TemplateSpec(ConfigModel):
    """One message: subject and body in Chinese, and in English."""

    subject: Text
    body: Text
    subject_en: Text
    body_en: Text


class TemplatesFile(ConfigModel):
    """The templates document: `{version, templates: {id: {subject, body, ..._en}}}`."""

    version: Text
    templates: Annotated[dict[str, TemplateSpec], EmptyDict] = {}

    @model_check(mode="after")
    def _valid(self) -> TemplatesFile:
        """At least one template; every one valid as the domain says."""
        if not self.templates:
            raise FieldError("templates", "name at least one template")
        for path, message in d.validate_templates(self.to_domain().templates):
            raise FieldError(tuple(path.split(".")), message)
        return self

    def to_domain(self) -> d.NoticeTemplates:
        """Returns the domain templates by id, with the document's version label."""
        return d.NoticeTemplates(
            self.version,
            {
                template_id: d.CustomerTemplate(
                    template_id, spec.subject, spec.body, spec.subject_en, spec.body_en
                )
                for template_id, spec in self.templates.items()
            },
        )


def parse_notice_templates(document: str) -> d.NoticeTemplates:
    """Returns the templates of a YAML document; NoticeTemplatesError locating the first bad
    key (`templates.first_notice.body: unknown placeholder who; …`) otherwise."""
    return parse_document(
        TemplatesFile,
        document,
        error=NoticeTemplatesError,
        shape="must be a mapping with version and templates",
    ).to_domain()


def templates_document(path: str | None) -> str:
    """Returns the templates document of the file `path` (None: the packaged default)."""
    return read_text(path, package=PACKAGE, default=TEMPLATES_DEFAULT)


def load_templates(path: str | None) -> d.NoticeTemplates:
    """Returns the templates of the file `path` (None: the packaged default), checked."""
    return parse_notice_templates(templates_document(path))

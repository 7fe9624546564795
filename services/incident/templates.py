"""The customer message templates file (docs/incidents.md, "Telling customers"): YAML
`templates: {id: {subject, body, subject_en, body_en}}`, checked at start (unknown keys,
empty texts, unknown placeholders), located in its file like the other configuration files."""

from __future__ import annotations

from typing import Annotated

from careops_platform.config_files import ConfigModel, EmptyDict, FieldError, Text, load
from pydantic import model_validator as model_check

from incident import domain as d

PACKAGE = "incident"
TEMPLATES_DEFAULT = "customer_templates_default.yaml"


class TemplateSpec(ConfigModel):
    """One message: subject and body in Chinese, and in English."""

    subject: Text
    body: Text
    subject_en: Text
    body_en: Text


class TemplatesFile(ConfigModel):
    """The templates file: `templates: {id: {subject, body, subject_en, body_en}}`."""

    templates: Annotated[dict[str, TemplateSpec], EmptyDict] = {}

    @model_check(mode="after")
    def _valid(self) -> TemplatesFile:
        """At least one template; every one valid as the domain says."""
        if not self.templates:
            raise FieldError("templates", "name at least one template")
        for path, message in d.validate_templates(self.to_domain()):
            raise FieldError(tuple(path.split(".")), message)
        return self

    def to_domain(self) -> dict[str, d.CustomerTemplate]:
        """Returns the domain templates by id."""
        return {
            template_id: d.CustomerTemplate(
                template_id, spec.subject, spec.body, spec.subject_en, spec.body_en
            )
            for template_id, spec in self.templates.items()
        }


def load_templates(path: str | None) -> dict[str, d.CustomerTemplate]:
    """Returns the templates of the YAML file `path` (None: the packaged default)."""
    return load(TemplatesFile, path, package=PACKAGE, default=TEMPLATES_DEFAULT).to_domain()

"""The SLA policy as versioned data (docs/policies.md): the `sla` PolicyKind, shared by ticketing
(which keeps the revisions on its stream) and quality (whose what-if reads them). Not part of the
pure kernel: it reads YAML through `careops_sla.parsing`."""

from __future__ import annotations

from careops_platform.policies import PolicyKind

from careops_sla.parsing import PolicyError, parse_policy_text
from careops_sla.policy import SlaPolicy

KIND_NAME = "sla"

SLA_KIND: PolicyKind[SlaPolicy] = PolicyKind(
    KIND_NAME, parse_policy_text, lambda policy: policy.version, (PolicyError,)
)

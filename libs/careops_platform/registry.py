"""The one registry of CareOps services: names, chart components, modules, default ports, the
environment variables that move them, and each context's stream (ARCHITECTURE §5).

`careops up`, every service's settings, the gateway's default backend addresses, the tests and
the chart checks read it; nothing else writes a port number or a stream name.
"""

from __future__ import annotations

from dataclasses import dataclass

from careops_eventstore import StreamSpec

SUBJECT_ROOT = "careops"


@dataclass(frozen=True)
class ContextStream:
    """A bounded context's stream: `CAREOPS_<CONTEXT>` over `careops.<context>.>`."""

    context: str

    @property
    def name(self) -> str:
        return f"CAREOPS_{self.context.upper()}"

    @property
    def subjects(self) -> tuple[str, ...]:
        return (f"{SUBJECT_ROOT}.{self.context}.>",)

    def spec(self, *, replicas: int = 1) -> StreamSpec:
        """Returns the stream's JetStream spec with `replicas`."""
        return StreamSpec(self.name, self.subjects, replicas=replicas)

    def prefix(self, aggregate_type: str) -> str:
        """Returns the subject prefix of one aggregate type (its ids follow after a dot)."""
        return f"{SUBJECT_ROOT}.{self.context}.{aggregate_type}"

    def filter(self, aggregate_type: str = "") -> str:
        """Returns the filter subject of one aggregate type's events; empty: the whole stream."""
        if not aggregate_type:
            return self.subjects[0]
        return f"{self.prefix(aggregate_type)}.>"


@dataclass(frozen=True)
class ServiceEntry:
    """How to start one service, where it answers, and the stream it owns (if any)."""

    name: str
    component: str  # the chart's component (Deployment / Service / values key) name
    module: str
    grpc_port: int
    metrics_port: int
    stream: ContextStream | None = None
    http_port: int | None = None

    def env(self, what: str) -> str:
        """Returns `CAREOPS_<NAME>_<WHAT>`, the variable of one of this service's settings."""
        return f"CAREOPS_{self.name.upper()}_{what.upper()}"

    @property
    def port_env(self) -> str:
        return self.env("grpc_port")

    @property
    def metrics_env(self) -> str:
        return self.env("metrics_port")

    @property
    def http_port_env(self) -> str:
        return self.env("http_port")

    @property
    def addr_env(self) -> str:
        """The variable that points the gateway at this service."""
        return self.env("addr")

    @property
    def default_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


TICKETING = ContextStream("ticketing")
CUSTOMER = ContextStream("customer")
INCIDENT = ContextStream("incident")
QUALITY = ContextStream("quality")

# In start order; the gateway last, as the edge in front of the four services.
SERVICES: tuple[ServiceEntry, ...] = (
    ServiceEntry("ticketing", "ticketing", "ticketing.main", 50051, 9101, TICKETING),
    ServiceEntry("customer", "customer-profile", "customer.main", 50052, 9102, CUSTOMER),
    ServiceEntry("incident", "incident-crisis", "incident.main", 50053, 9103, INCIDENT),
    ServiceEntry("quality", "quality-scoring", "quality.main", 50054, 9104, QUALITY),
    ServiceEntry("gateway", "gateway", "gateway.main", 50050, 9105, http_port=8080),
)
BY_NAME = {entry.name: entry for entry in SERVICES}
BACKENDS = tuple(entry for entry in SERVICES if entry.stream is not None)
# The gateway's request metadata naming the backend a call of a service that every backend
# serves for itself (ProjectionAdminService) is for: one of the BACKENDS' names.
BACKEND_METADATA = "careops-backend"


def service(name: str) -> ServiceEntry:
    """Returns the registry entry of service `name`; KeyError names the known ones."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no service {name!r} (known: {', '.join(BY_NAME)})") from None


def stream(context: str) -> ContextStream:
    """Returns the stream context `context` owns."""
    owned = service(context).stream
    if owned is None:
        raise KeyError(f"{context} owns no stream")
    return owned

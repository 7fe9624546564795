"""The OpenAPI 3.1 document of the HTTP/JSON edge, generated from the proto descriptors.

Every served method is `POST /v1/<package.Service>/<Method>`; request and response schemas are
the messages as protobuf's JSON mapping writes them (lowerCamelCase names, enum names, 64-bit
integers as strings, well-known types as their JSON forms).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.descriptor import MethodDescriptor as Method
from google.rpc import status_pb2

Schema = dict[str, Any]
REF = "#/components/schemas/"
# What a gRPC metadata value (so a forwarded header) may hold.
PRINTABLE_ASCII = "^[\\x20-\\x7E]*$"
STATUS = "google.rpc.Status"
INT64 = {"type": "string", "pattern": "^-?[0-9]+$"}
FLOAT = {
    "anyOf": [{"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]
}
_T = FieldDescriptor
SCALARS: dict[int, Schema] = {
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
    _T.TYPE_DOUBLE: FLOAT,
    _T.TYPE_FLOAT: FLOAT,
    **{t: {"type": "integer", "format": "int32"} for t in (_T.TYPE_INT32, _T.TYPE_SINT32)},
    _T.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    **{
        t: {"type": "integer", "format": "uint32", "minimum": 0}
        for t in (_T.TYPE_UINT32, _T.TYPE_FIXED32)
    },
    **{t: {**INT64, "format": "int64"} for t in (_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64)},
    **{t: {**INT64, "format": "uint64"} for t in (_T.TYPE_UINT64, _T.TYPE_FIXED64)},
}
# Well-known types have their own JSON forms (protobuf's JSON mapping).
WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
    },
    # Wrappers are their wrapped scalar.
    **{
        f"google.protobuf.{name}Value": SCALARS[scalar]
        for name, scalar in [
            ("Bool", _T.TYPE_BOOL),
            ("String", _T.TYPE_STRING),
            ("Bytes", _T.TYPE_BYTES),
            ("Double", _T.TYPE_DOUBLE),
            ("Float", _T.TYPE_FLOAT),
            ("Int32", _T.TYPE_INT32),
            ("UInt32", _T.TYPE_UINT32),
            ("Int64", _T.TYPE_INT64),
            ("UInt64", _T.TYPE_UINT64),
        ]
    },
}
HEARTBEAT = {
    "type": "object",
    "properties": {"at": {"type": "string", "format": "date-time"}},
    "required": ["at"],
}


class Schemas:
    """The component schemas of the messages and enums reachable from the served methods."""

    def __init__(self) -> None:
        self.components: dict[str, Schema] = {}

    def ref(self, descriptor: Descriptor | EnumDescriptor) -> Schema:
        """Returns a reference to the schema of `descriptor`, adding it (and what it uses)."""
        name = descriptor.full_name
        if name in WELL_KNOWN:
            return dict(WELL_KNOWN[name])
        if name not in self.components:
            self.components[name] = {}  # placed first: a recursive message refers to itself
            if isinstance(descriptor, EnumDescriptor):
                self.components[name] = enum_schema(descriptor)
            else:
                self.components[name] = self.message(descriptor)
        return {"$ref": REF + name}

    def message(self, descriptor: Descriptor) -> Schema:
        """Returns the object schema of a message: every field by its JSON name."""
        properties = {field.json_name: self.field(field) for field in descriptor.fields}
        return {
            "type": "object",
            "title": descriptor.name,
            "properties": properties,
            "additionalProperties": False,
        }

    def field(self, field: FieldDescriptor) -> Schema:
        """Returns the schema of one field's JSON value (arrays for repeated, objects for maps)."""
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            # Map keys are JSON object keys, strings whatever the key type.
            value = field.message_type.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self.single(value)}
        if field.is_repeated:
            return {"type": "array", "items": self.single(field)}
        return self.single(field)

    def single(self, field: FieldDescriptor) -> Schema:
        """Returns the schema of one value of `field`."""
        if field.message_type is not None:
            return self.ref(field.message_type)
        if field.enum_type is not None:
            return self.ref(field.enum_type)
        return dict(SCALARS[field.type])


def enum_schema(descriptor: EnumDescriptor) -> Schema:
    """Returns an enum's schema: its value names (the JSON mapping writes names)."""
    return {"type": "string", "title": descriptor.name, "enum": [v.name for v in descriptor.values]}


def _reply(method: Method, schemas: Schemas) -> dict[str, Any]:
    """Returns the 200 response of one method: its message, or for a stream its NDJSON lines."""
    reply = schemas.ref(method.output_type)
    if not method.server_streaming:
        return {
            "description": method.output_type.name,
            "content": {"application/json": {"schema": reply}},
        }
    line = {
        "type": "object",
        "description": "One line: a message, a heartbeat while idle, or the last error.",
        "properties": {"result": reply, "heartbeat": HEARTBEAT, "error": {"$ref": REF + STATUS}},
        "minProperties": 1,
        "maxProperties": 1,
    }
    return {
        "description": "A stream of NDJSON lines",
        "content": {"application/x-ndjson": {"schema": line}},
    }


def _operation(
    method: Method, schemas: Schemas, headers: Iterable[str], tag: str
) -> dict[str, Any]:
    """Returns the POST operation of one method."""
    return {
        "operationId": f"{method.containing_service.name}_{method.name}",
        "tags": [tag],
        "summary": f"{method.containing_service.name}.{method.name}",
        "parameters": [
            {
                "name": header,
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 200, "pattern": PRINTABLE_ASCII},
            }
            for header in headers
        ],
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": schemas.ref(method.input_type)}},
        },
        "responses": {
            "200": _reply(method, schemas),
            "default": {"$ref": "#/components/responses/Error"},
        },
    }


def _plain(summary: str, content_type: str, schema: Schema) -> dict[str, Any]:
    """Returns a public GET operation (no credentials needed)."""
    return {
        "get": {
            "summary": summary,
            "operationId": summary.replace(" ", "_"),
            "security": [],
            "responses": {
                "200": {"description": summary, "content": {content_type: {"schema": schema}}},
                "default": {"$ref": "#/components/responses/Error"},
            },
        }
    }


def document(
    methods: Mapping[str, Method],
    headers: Iterable[str],
    *,
    title: str,
    version: str,
    extra_paths: Mapping[str, Any] | None = None,
    extra_schemes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Returns the OpenAPI 3.1 document of the HTTP routes: `methods` by their gRPC path
    (`/package.Service/Method`), each taking the optional request `headers`; `extra_paths`
    (path items) and `extra_schemes` (security schemes) of routes other modules serve."""
    schemas = Schemas()
    schemas.ref(status_pb2.Status.DESCRIPTOR)
    headers = list(headers)
    paths: dict[str, Any] = {
        f"/v1{path}": {
            "post": _operation(method, schemas, headers, method.containing_service.full_name)
        }
        for path, method in sorted(methods.items())
    }
    health = {"type": "object", "properties": {"status": {"type": "string"}}}
    paths["/healthz"] = _plain("health", "application/json", health)
    paths["/openapi.json"] = _plain("openapi document", "application/json", {"type": "object"})
    paths["/docs"] = _plain("api reference", "text/html", {"type": "string"})
    paths.update(extra_paths or {})
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "responses": {
                "Error": {
                    "description": "A google.rpc.Status with the HTTP status of code.proto",
                    "content": {"application/json": {"schema": {"$ref": REF + STATUS}}},
                }
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                **(extra_schemes or {}),
            },
        },
        "security": [{"bearer": []}],
    }

"""The published view of each context's events: what other contexts may read of them.

One pure module of frozen dataclasses per publishing context (`ticketing`, `customer`,
`incident`, `quality`) names every field of every event other contexts consume, under the
protobuf field's name, but those it lists in WITHHELD (what people wrote, sealed personal data,
a context's own bookkeeping): other contexts cannot read those at all. `careops_published.codec`
builds the views from the protobuf messages. The
view modules import nothing but the standard library, so a domain module may use them.

Conventions (the same as careops_eventstore.codec): an enum field is the lower-case name of the
proto enum value without its prefix (CHANNEL_CHAT -> "chat"), None when unspecified; a
Timestamp is an aware datetime (None when unset), a Duration a timedelta, a repeated field a
tuple and an unset nested message None.
"""

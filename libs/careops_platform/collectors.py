"""Prometheus helpers: labelled series present from the start, gauges counted at scrape time."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def preinitialise(metric: MetricWrapperBase, *values: Iterable[str]) -> None:
    """Creates the series of every combination of the label values (one iterable per label,
    in label order) at 0.

    A labelled series otherwise appears only at its first increment, and `increase()` cannot
    see the jump from "absent" to its first value: the first burst would count as nothing.
    """
    for combination in itertools.product(*(tuple(v) for v in values)):
        metric.labels(*combination)


def cached_labels(metric: MetricWrapperBase) -> Callable[..., Any]:
    """Returns `metric.labels` remembering the child of each label-value tuple: the same
    series as `labels` returns (a child lives as long as its metric; nothing here removes
    one), without its validation, conversions and lock on every call of a hot path. A
    series still appears at its first use, as with `labels`."""
    children: dict[tuple[str, ...], Any] = {}

    def labels(*values: str) -> Any:
        child = children.get(values)
        if child is None:
            child = children[values] = metric.labels(*values)
        return child

    return labels


class SqlCounts(Collector):
    """One gauge sample per expected label value, counted by `count` at every scrape.

    `labels` maps the keys `count` returns to the label values shown (a bounded set: every one
    is exported, 0 when absent). A database error exports the family without samples.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        name: str,
        documentation: str,
        label: str,
        labels: Mapping[str, str],
        count: Callable[[Session], Mapping[str, int]],
    ) -> None:
        self._engine = engine
        self._name = name
        self._documentation = documentation
        self._label = label
        self._labels = labels
        self._count = count

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self._name, self._documentation, labels=[self._label])

    def describe(self) -> list[GaugeMetricFamily]:
        return [self._family()]

    def collect(self) -> list[GaugeMetricFamily]:
        family = self._family()
        try:
            with Session(self._engine) as session:
                counts = self._count(session)
        except SQLAlchemyError:
            log.warning("cannot count %s", self._name, exc_info=True)
            return [family]
        for key, shown in self._labels.items():
            family.add_metric([shown], counts.get(key, 0))
        return [family]

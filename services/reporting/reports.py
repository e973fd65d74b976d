"""Reports from fact counts: report names, and counts by kind turned into report fields. Pure."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from engage import resources
from engage.v1 import bus_pb2, common_pb2, reporting_pb2

_DELIVERY_KINDS = bus_pb2.DeliveryEvent.Kind
# DeliveryEvent.Kind number → DeliveryCounts field (KIND_SENT → sent, ...).
COUNT_FIELD_OF_KIND: dict[int, str] = {
    number: name.removeprefix("KIND_").lower()
    for name, number in _DELIVERY_KINDS.items()
    if number != _DELIVERY_KINDS.Value("KIND_UNSPECIFIED")
}


@dataclass(frozen=True)
class ReportName:
    workspace: str
    collection: str
    resource_id: str

    @property
    def resource(self) -> str:
        """The reported resource's own name, as bus events carry it."""
        return resources.name_of(self.collection, self.resource_id, self.workspace)

    @property
    def name(self) -> str:
        return f"{self.resource}/report"


@dataclass
class DeliveryTotals:
    """Delivery counts overall and per channel, from (channel, kind, count) rows."""

    overall: reporting_pb2.DeliveryCounts = field(default_factory=reporting_pb2.DeliveryCounts)
    by_channel: dict[int, reporting_pb2.DeliveryCounts] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, int, int]]) -> "DeliveryTotals":
        totals = cls()
        for channel, kind, count in rows:
            count_field = COUNT_FIELD_OF_KIND.get(kind)
            if count_field is None:
                continue
            per_channel = totals.by_channel.setdefault(channel, reporting_pb2.DeliveryCounts())
            for counts in (totals.overall, per_channel):
                setattr(counts, count_field, getattr(counts, count_field) + count)
        return totals

    def channel_counts(self) -> list[reporting_pb2.ChannelDeliveryCounts]:
        return [
            reporting_pb2.ChannelDeliveryCounts(
                channel=cast(common_pb2.Channel, channel), counts=counts
            )
            for channel, counts in sorted(self.by_channel.items())
        ]


def journey_report(
    name: ReportName, kind_counts: dict[int, int], deliveries: DeliveryTotals
) -> reporting_pb2.JourneyReport:
    kinds = bus_pb2.JourneyEvent
    return reporting_pb2.JourneyReport(
        name=name.name,
        enrolled_count=kind_counts.get(kinds.KIND_ENROLLED, 0),
        exited_count=kind_counts.get(kinds.KIND_EXITED, 0),
        converted_count=kind_counts.get(kinds.KIND_CONVERTED, 0),
        deliveries=deliveries.overall,
        channel_deliveries=deliveries.channel_counts(),
    )


def campaign_report(name: ReportName, deliveries: DeliveryTotals) -> reporting_pb2.CampaignReport:
    return reporting_pb2.CampaignReport(
        name=name.name,
        deliveries=deliveries.overall,
        channel_deliveries=deliveries.channel_counts(),
    )

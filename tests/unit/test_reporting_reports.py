"""Report names and how fact counts become report fields, without I/O."""

from engage.v1 import bus_pb2, common_pb2, reporting_pb2
from services.reporting import reports
from services.reporting.reports import DeliveryTotals, ReportName

Kind = bus_pb2.DeliveryEvent


def test_a_report_name_names_its_resource() -> None:
    name = ReportName("acme", "journeys", "welcome")
    assert name.resource == "workspaces/acme/journeys/welcome"
    assert name.name == "workspaces/acme/journeys/welcome/report"


def test_every_delivery_kind_has_a_count_field() -> None:
    fields = {f.name for f in reporting_pb2.DeliveryCounts.DESCRIPTOR.fields}
    assert set(reports.COUNT_FIELD_OF_KIND.values()) == fields


def test_counts_add_up_overall_and_per_channel() -> None:
    email, push = common_pb2.CHANNEL_EMAIL, common_pb2.CHANNEL_PUSH
    totals = DeliveryTotals.from_rows(
        [
            (email, Kind.KIND_SENT, 3),
            (push, Kind.KIND_SENT, 2),
            (email, Kind.KIND_CLICKED, 1),
            (email, Kind.KIND_UNSPECIFIED, 9),
        ]
    )
    assert totals.overall == reporting_pb2.DeliveryCounts(sent=5, clicked=1)
    assert [(c.channel, c.counts.sent) for c in totals.channel_counts()] == [(email, 3), (push, 2)]

"""Every service of the contracts is either served by a process `engage up` starts, or said to
be not yet served, in its proto and in the README: a client built from the protos is never
surprised by a missing service."""

import re
from pathlib import Path

from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from engage.v1 import (
    campaign_pb2,
    ingest_pb2,
    journey_pb2,
    message_pb2,
    profile_pb2,
    reporting_pb2,
    segment_pb2,
    subscription_pb2,
    template_pb2,
)
from tests.harness import Suite

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = (
    campaign_pb2,
    ingest_pb2,
    journey_pb2,
    message_pb2,
    profile_pb2,
    reporting_pb2,
    segment_pb2,
    subscription_pb2,
    template_pb2,
)
NOT_YET_SERVED = "Not yet served"


def contract_services() -> dict[str, FileDescriptor]:
    return {
        service.full_name: module.DESCRIPTOR
        for module in CONTRACTS
        for service in module.DESCRIPTOR.services_by_name.values()
    }


async def served_services(suite: Suite) -> set[str]:
    served: set[str] = set()
    for name in suite.processes:
        async with suite.channel(name) as channel:
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            async for answer in reflection.ServerReflectionInfo(iter([request])):
                served |= {s.name for s in answer.list_services_response.service}
    return served


def marked_in_proto(file: FileDescriptor, service: str) -> bool:
    text = (ROOT / "protos" / file.name).read_text()
    short = service.rsplit(".", 1)[-1]
    comment = re.search(rf"((?://[^\n]*\n)+)service {short} \{{", text)
    return comment is not None and NOT_YET_SERVED in comment.group(1)


def listed_in_readme_as_not_served(service: str) -> bool:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Not yet served", 1)[-1].split("\n## ", 1)[0]
    return service.rsplit(".", 1)[-1] in section


async def test_each_contract_service_is_served_or_marked_not_yet_served(suite: Suite) -> None:
    served = await served_services(suite)
    contracts = contract_services()
    for service, file in contracts.items():
        if service in served:
            assert not marked_in_proto(file, service), f"{service} is served but marked not"
        else:
            assert marked_in_proto(file, service), f"{service} is neither served nor marked"
            assert listed_in_readme_as_not_served(service), f"{service} missing in README"
    assert served & set(contracts), "no Engage service answered reflection"

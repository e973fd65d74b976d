"""Every service of the contracts is either served by a process `engage up` starts, or said to
be not yet served, in its proto and in the README: a client built from the protos is never
surprised by a missing service."""

import re
from pathlib import Path

from google.protobuf.descriptor import ServiceDescriptor

from tests.harness import Suite, contract_services, hosts

ROOT = Path(__file__).resolve().parents[2]
NOT_YET_SERVED = "Not yet served"


def marked_in_proto(service: ServiceDescriptor) -> bool:
    text = (ROOT / "protos" / service.file.name).read_text()
    short = service.name
    comment = re.search(rf"((?://[^\n]*\n)+)service {short} \{{", text)
    return comment is not None and NOT_YET_SERVED in comment.group(1)


def listed_in_readme_as_not_served(service: ServiceDescriptor) -> bool:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Not yet served", 1)[-1].split("\n## ", 1)[0]
    return f"**{service.name}**" in section


async def test_each_contract_service_is_served_or_marked_not_yet_served(suite: Suite) -> None:
    served = set(await hosts(suite))
    contracts = contract_services()
    for service in contracts:
        name = service.full_name
        if name in served:
            assert not marked_in_proto(service), f"{name} is served but marked not"
        else:
            assert marked_in_proto(service), f"{name} is neither served nor marked"
            assert listed_in_readme_as_not_served(service), f"{name} missing in README"
    assert served & {service.full_name for service in contracts}, "no Engage service answered"

"""Every NATS subject of the bus, built in one place: `engage.<kind>.<workspace>[.<more>]`.

Streams (engage/bus.py) and consumers filter on the wildcards below; publishers build concrete
subjects with the functions. Channel tokens are the lower-case `Channel` enum name without its
prefix (`CHANNEL_EMAIL` → `email`).
"""

import zlib

from engage.v1 import common_pb2

EVENTS = "engage.events.>"
PROFILES = "engage.profiles.>"
MEMBERSHIPS = "engage.memberships.>"
SENDS = "engage.sends.>"
DELIVERIES = "engage.deliveries.>"
JOURNEYS = "engage.journeys.>"
DEAD_LETTERS = "engage.deadletter.>"


def channel_token(channel: int) -> str:
    """`CHANNEL_EMAIL` → `email`: the channel's token in send and delivery subjects."""
    return common_pb2.Channel.Name(channel).removeprefix("CHANNEL_").lower()


def events(workspace: str, profile_key: str, partitions: int) -> str:
    """`engage.events.<workspace>.<partition>`; one profile's events always share a partition."""
    return f"engage.events.{workspace}.{zlib.crc32(profile_key.encode()) % partitions}"


def profiles(workspace: str) -> str:
    return f"engage.profiles.{workspace}"


def memberships(workspace: str) -> str:
    return f"engage.memberships.{workspace}"


def sends(channel: int) -> str:
    return f"engage.sends.{channel_token(channel)}"


def deliveries(workspace: str, channel: int) -> str:
    return f"engage.deliveries.{workspace}.{channel_token(channel)}"


def journeys(workspace: str) -> str:
    return f"engage.journeys.{workspace}"


def dead_letter(durable: str) -> str:
    """Where the consumer `durable` parks what it could not handle."""
    return f"engage.deadletter.{durable}"

import asyncio

import pytest
from telethon import errors

from tgops.config import Settings
from tgops.telegram.errors import ErrorOutcome, classify

SETTINGS = Settings(
    stream_closed_cooldown_sec=61, unknown_error_cooldown_sec=62, peer_flood_cooldown_sec=86400
)

TABLE = [
    (errors.FloodWaitError(request=None, capture=420), ErrorOutcome("cooldown", "FLOOD_WAIT", 420)),
    (
        errors.FloodPremiumWaitError(request=None, capture=9),
        ErrorOutcome("cooldown", "FLOOD_PREMIUM_WAIT", 9),
    ),
    (errors.PeerFloodError(request=None), ErrorOutcome("cooldown", "PEER_FLOOD", 86400)),
    (errors.AuthKeyUnregisteredError(request=None), ErrorOutcome("disable", "AUTH_KEY_UNREGISTERED")),
    (errors.SessionRevokedError(request=None), ErrorOutcome("disable", "SESSION_REVOKED")),
    (errors.UserDeactivatedError(request=None), ErrorOutcome("disable", "USER_DEACTIVATED")),
    (errors.UserDeactivatedBanError(request=None), ErrorOutcome("disable", "USER_DEACTIVATED_BAN")),
    (errors.AuthKeyDuplicatedError(request=None), ErrorOutcome("disable", "AUTH_KEY_DUPLICATED")),
    (errors.SessionExpiredError(request=None), ErrorOutcome("disable", "SESSION_EXPIRED")),
    (errors.UsernameNotOccupiedError(request=None), ErrorOutcome("definite", "USERNAME_NOT_OCCUPIED")),
    (errors.UsernameInvalidError(request=None), ErrorOutcome("definite", "USERNAME_INVALID")),
    (errors.InviteHashExpiredError(request=None), ErrorOutcome("definite", "INVITE_HASH_EXPIRED")),
    (errors.InviteHashInvalidError(request=None), ErrorOutcome("definite", "INVITE_HASH_INVALID")),
    (errors.ChannelPrivateError(request=None), ErrorOutcome("definite", "CHANNEL_PRIVATE")),
    (
        ValueError("Could not find the input entity for PeerUser(user_id=5)"),
        ErrorOutcome("refresh_peer", "PEER_NOT_IN_DB"),
    ),
    (
        ConnectionResetError("Connection reset by peer"),
        ErrorOutcome("cooldown", "CONNECTION_ERROR", 61, True),
    ),
    (asyncio.IncompleteReadError(b"", 8), ErrorOutcome("cooldown", "CONNECTION_ERROR", 61, True)),
    (errors.InvalidBufferError(b"\x6c\xfe\xff\xff"), ErrorOutcome("cooldown", "CONNECTION_ERROR", 61, True)),
    (TimeoutError(), ErrorOutcome("cooldown", "CONNECTION_ERROR", 61, True)),
    (errors.RpcCallFailError(request=None), ErrorOutcome("cooldown", "RPC_CALL_FAIL", 62)),
    (
        errors.BadRequestError(request=None, message="SOMETHING_NEW", code=400),
        ErrorOutcome("cooldown", "SOMETHING_NEW", 62),
    ),
    (errors.RPCError(request=None, message="WEIRD", code=500), ErrorOutcome("cooldown", "WEIRD", 62)),
    (RuntimeError("boom"), ErrorOutcome("cooldown", "RUNTIME", 62)),
]


@pytest.mark.parametrize("error,expected", TABLE, ids=[type(error).__name__ for error, _ in TABLE])
def test_every_error_class_maps_to_one_outcome(error, expected):
    assert classify(error, SETTINGS) == expected


def test_a_value_error_that_is_not_about_peers_is_not_a_peer_refresh():
    assert classify(ValueError("Not a valid string"), SETTINGS).kind == "cooldown"

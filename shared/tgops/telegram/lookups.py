"""The Telethon requests behind the pool's lookups (tgops.telegram.peers.PeerLookup), and the mapping of
Telegram's answers onto PeerInfo. Each function takes the connected client last, so the pool can run it as
`partial(resolve_username, name)`. Worker-only (imports Telethon).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from telethon.tl import functions, types

from tgops.telegram.peers import PeerInfo
from tgops.telegram.sessions import MtprotoClient


async def resolve_username(username: str, client: MtprotoClient) -> PeerInfo:
    resolved = await client(functions.contacts.ResolveUsernameRequest(username=username))
    return await peer_info(resolved, client)


async def resolve_post(username: str, post_id: int, client: MtprotoClient) -> PeerInfo:
    """The channel and whether its post `post_id` exists (Telegram answers MessageEmpty for one that was
    never sent or was deleted). Only channels and supergroups have t.me/name/N posts."""
    resolved = await client(functions.contacts.ResolveUsernameRequest(username=username))
    info = await peer_info(resolved, client)
    channel = resolved_chat(resolved)
    if not isinstance(channel, types.Channel):
        return replace(info, post_exists=False)
    found = await client(
        functions.channels.GetMessagesRequest(
            channel=types.InputChannel(channel.id, channel.access_hash), id=[types.InputMessageID(post_id)]
        )
    )
    exists = any(not isinstance(message, types.MessageEmpty) for message in found.messages)
    return replace(info, post_exists=exists)


async def check_invite(invite_hash: str, client: MtprotoClient) -> PeerInfo:
    invite = await client(functions.messages.CheckChatInviteRequest(hash=invite_hash))
    if isinstance(invite, (types.ChatInviteAlready, types.ChatInvitePeek)):
        # The probe account is in the chat (or may peek into it): Telegram answers with the chat itself.
        return await _with_member_count(chat_info(invite.chat), invite.chat, client)
    chat_type = "channel" if invite.broadcast else "supergroup" if invite.megagroup else "group"
    return PeerInfo(
        chat_type=chat_type,
        title=invite.title,
        participants_count=invite.participants_count,
        is_private=not invite.public,
        join_request=bool(invite.request_needed),
        paid=invite.subscription_pricing is not None,  # a Telegram Stars subscription is needed to join
    )


async def peer_info(resolved: types.contacts.ResolvedPeer, client: MtprotoClient) -> PeerInfo:
    if isinstance(resolved.peer, types.PeerUser):
        user = next(user for user in resolved.users if user.id == resolved.peer.user_id)
        name = " ".join(part for part in (user.first_name, user.last_name) if part) or None
        return PeerInfo(
            chat_type="bot" if user.bot else "user",
            title=name,
            username=user.username,
            is_private=False,
            join_request=False,
            paid=False,
        )
    chat = resolved_chat(resolved)
    return await _with_member_count(chat_info(chat), chat, client)


async def _with_member_count(info: PeerInfo, chat: Any, client: MtprotoClient) -> PeerInfo:
    """Telegram often leaves the member count off a channel object; GetFullChannel always has it."""
    if info.participants_count is not None or not isinstance(chat, types.Channel):
        return info
    full = await client(
        functions.channels.GetFullChannelRequest(types.InputChannel(chat.id, chat.access_hash))
    )
    return replace(info, participants_count=full.full_chat.participants_count)


def resolved_chat(resolved: types.contacts.ResolvedPeer) -> Any:
    """The chat a resolved name points at; None for a user."""
    peer = resolved.peer
    if isinstance(peer, types.PeerUser):
        return None
    chat_id = peer.channel_id if isinstance(peer, types.PeerChannel) else peer.chat_id
    return next(chat for chat in resolved.chats if chat.id == chat_id)


def chat_info(chat: Any) -> PeerInfo:
    if isinstance(chat, types.Channel):
        return PeerInfo(
            chat_type="supergroup" if chat.megagroup else "channel",
            title=chat.title,
            username=chat.username.lower() if chat.username else None,
            participants_count=chat.participants_count,
            is_private=not (chat.username or chat.usernames),
            join_request=bool(chat.join_request),
        )
    return PeerInfo(
        chat_type="group",
        title=getattr(chat, "title", None),
        participants_count=getattr(chat, "participants_count", None),
        is_private=True,
    )

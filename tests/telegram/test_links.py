import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgops.telegram.links import parse_link

PUBLIC = [
    "durov",
    "@durov",
    "@Durov",
    "DUROV",
    "t.me/durov",
    "https://t.me/durov",
    "http://t.me/durov",
    "https://www.t.me/durov",
    "www.t.me/durov",
    "https://telegram.me/durov",
    "https://telegram.dog/durov",
    "HTTPS://T.ME/Durov",
    "https://t.me/durov/",
    "https://t.me/durov?start=x",
    "https://t.me/durov#top",
    "https://t.me/s/durov",
    "t.me/s/durov/",
    "durov.t.me",
    "https://durov.t.me/",
    "tg://resolve?domain=durov",
    "tg:resolve?domain=Durov",
    "  https://t.me/durov  ",
]


@pytest.mark.parametrize("raw", PUBLIC)
def test_every_public_form_is_one_canonical_link(raw):
    parsed = parse_link(raw)
    assert (parsed.kind, parsed.username, parsed.normalized, parsed.reason) == (
        "public",
        "durov",
        "https://t.me/durov",
        None,
    )


POSTS = [
    "t.me/durov/42",
    "https://t.me/Durov/42/",
    "https://t.me/durov/42?single",
    "https://t.me/durov/42?comment=7",
    "https://t.me/s/durov/42",
    "https://telegram.dog/durov/42#x",
    "durov.t.me/42",
    "tg://resolve?domain=durov&post=42",
    "https://t.me/durov/7/42",  # a forum topic (7) and its message (42)
]


@pytest.mark.parametrize("raw", POSTS)
def test_every_post_form(raw):
    parsed = parse_link(raw)
    assert (parsed.kind, parsed.username, parsed.post_id, parsed.normalized) == (
        "post",
        "durov",
        42,
        "https://t.me/durov/42",
    )


INVITES = [
    "https://t.me/+AbCdEf_-123",
    "t.me/+AbCdEf_-123",
    "https://t.me/%2BAbCdEf_-123",
    "https://t.me/%2bAbCdEf_-123",
    "https://t.me/joinchat/AbCdEf_-123",
    "https://t.me/JOINCHAT/AbCdEf_-123/",
    "telegram.me/joinchat/AbCdEf_-123",
    "https://t.me/+AbCdEf_-123?foo=1",
    "tg://join?invite=AbCdEf_-123",
    "TG://JOIN?INVITE=AbCdEf_-123",
]


@pytest.mark.parametrize("raw", INVITES)
def test_every_invite_form_keeps_the_hash_case(raw):
    parsed = parse_link(raw)
    assert (parsed.kind, parsed.invite_hash, parsed.normalized) == (
        "invite",
        "AbCdEf_-123",
        "https://t.me/+AbCdEf_-123",
    )


@pytest.mark.parametrize(
    "raw", ["https://t.me/c/1234567/89", "t.me/c/1234567/5/89", "tg://privatepost?channel=1234567&post=89"]
)
def test_private_posts(raw):
    parsed = parse_link(raw)
    assert (parsed.kind, parsed.channel_id, parsed.post_id, parsed.normalized) == (
        "private_post",
        1234567,
        89,
        "https://t.me/c/1234567/89",
    )


@pytest.mark.parametrize(
    "raw", ["@PriceBot", "https://t.me/pricebot?start=abc", "tg://resolve?domain=PriceBot"]
)
def test_names_ending_in_bot_are_bots(raw):
    parsed = parse_link(raw)
    assert (parsed.kind, parsed.username, parsed.normalized) == ("bot", "pricebot", "https://t.me/pricebot")


INVALID = {
    "": "empty",
    "   ": "empty",
    "https://example.com/durov": "not a Telegram host",
    "https://evil-t.me/durov": "not a Telegram host",
    "ftp://t.me/durov": "unsupported scheme",
    "https://t.me/": "no chat",
    "https://t.me/s/": "no chat",
    "https://t.me/ab": "not a valid username",
    "@1durov": "not a valid username",
    "@durov_": "not a valid username",
    "@du__rov": "not a valid username",
    "@" + "a" * 33: "not a valid username",
    "https://t.me/+": "not a valid invite hash",
    "https://t.me/+15551234567": "phone number",
    "https://t.me/joinchat/": "not a valid invite hash",
    "https://t.me/+abc$def1": "not a valid invite hash",
    "https://t.me/c/123": "channel id and a post",
    "https://t.me/c/abc/1": "channel id and a post",
    "https://t.me/addstickers/Animals": "not a chat link",
    "https://t.me/share/url?url=x": "not a chat link",
    "https://t.me:99999/durov": "not a URL",
    "https://[::1/durov": "not a URL",
    "https://user@t.me/durov": "no user name",
    "tg://resolve?phone=123": "without a domain",
    "tg://msg?text=hi": "unsupported tg:// action",
    "tg://join": "not a valid invite hash",
    "t.me/dur ov": "whitespace",
    "t.me/durov\n": None,  # trailing newline is stripped, so this one is valid
    "x" * 5000: "longer than",
}


@pytest.mark.parametrize("raw,reason", INVALID.items())
def test_invalid_links_carry_a_reason(raw, reason):
    parsed = parse_link(raw)
    if reason is None:
        assert parsed.kind == "public"
        return
    assert parsed.kind == "invalid"
    assert parsed.normalized is None
    assert reason in parsed.reason


@pytest.mark.parametrize("raw", [None, 42, b"t.me/durov", ["t.me/durov"]])
def test_non_text_is_invalid_not_an_exception(raw):
    assert parse_link(raw).kind == "invalid"


LINKISH = st.text(alphabet=st.sampled_from(list("tmeTME./:+@%2Bbcjoinhs?=&#_-0123456789 \x00é")), max_size=60)


@settings(max_examples=800, deadline=None)
@given(st.one_of(st.text(max_size=200), LINKISH, LINKISH.map(lambda tail: "https://t.me/" + tail)))
def test_never_raises_and_valid_links_round_trip(raw):
    parsed = parse_link(raw)
    if parsed.kind == "invalid":
        assert parsed.reason and parsed.normalized is None
        return
    assert parsed.reason is None
    # The canonical form is a fixed point: parsing it again gives the same link.
    assert parse_link(parsed.normalized) == parsed


# How Telegram's own clients read t.me links (tdlib's LinkManager::get_link_info and parse_t_me_link_query,
# Telegram Desktop's TryConvertUrlToLocal): each form below opens the chat (or post, or invite) shown.
CLIENT_FORMS = {
    # an explicit default port, whatever the scheme
    "https://t.me:443/durov": ("public", "https://t.me/durov"),
    "http://t.me:80/durov": ("public", "https://t.me/durov"),
    "https://t.me:80/durov/42": ("post", "https://t.me/durov/42"),
    "https://durov.t.me:443/": ("public", "https://t.me/durov"),
    # a percent-encoded host
    "https://t%2Eme/durov": ("public", "https://t.me/durov"),
    "https://t%2eme/+AbCdEf": ("invite", "https://t.me/+AbCdEf"),
    "https://durov%2Et.me/42": ("post", "https://t.me/durov/42"),
    # /s/ (the web preview) as often as it comes, also percent-encoded
    "https://t.me/s/s/durov": ("public", "https://t.me/durov"),
    "https://t.me/s/s/s/durov/42": ("post", "https://t.me/durov/42"),
    "https://t.me/%73/durov": ("public", "https://t.me/durov"),
    # query parameters after a name: still the chat
    "https://t.me/pricebot?start=abc": ("bot", "https://t.me/pricebot"),
    "https://t.me/durov?boost": ("public", "https://t.me/durov"),
    "https://t.me/pricebot?ref=abc": ("bot", "https://t.me/pricebot"),
    "https://t.me/pricebot?startgroup=x&admin=change_info": ("bot", "https://t.me/pricebot"),
    "https://t.me/durov/?videochat": ("public", "https://t.me/durov"),
    # extra path segments after a name: the chat they belong to (a story, a Mini App, a collection)
    "https://t.me/durov/s/5": ("public", "https://t.me/durov"),
    "https://t.me/pricebot/shop?startapp=x": ("bot", "https://t.me/pricebot"),
    "https://t.me/durov/abc": ("public", "https://t.me/durov"),
    "https://t.me/durov/a/b/c": ("public", "https://t.me/durov"),
    "https://durov.t.me/s/5": ("public", "https://t.me/durov"),
    "https://durov.t.me/42/x": ("post", "https://t.me/durov/42"),
    # post 0 is no post: the apps open the chat
    "https://t.me/durov/0": ("public", "https://t.me/durov"),
    "tg://resolve?domain=durov&post=0": ("public", "https://t.me/durov"),
    # a forum topic and its message, and what follows them
    "https://t.me/durov/7/42/x": ("post", "https://t.me/durov/42"),
    "https://t.me/durov/42/0": ("post", "https://t.me/durov/42"),
    "https://t.me/durov/042": ("post", "https://t.me/durov/42"),
    # a boost link names its chat
    "https://t.me/boost/durov": ("public", "https://t.me/durov"),
    # short invite hashes, and paths after a hash
    "https://t.me/+AbC": ("invite", "https://t.me/+AbC"),
    "https://t.me/joinchat/x": ("invite", "https://t.me/+x"),
    "https://t.me/+AbCdEf/extra": ("invite", "https://t.me/+AbCdEf"),
    "https://t.me/%20AbCdEf": ("invite", "https://t.me/+AbCdEf"),
    # Telegram's own bots have 3-letter names
    "https://t.me/gif": ("public", "https://t.me/gif"),
    # a private post followed by more
    "https://t.me/c/1234567/89/x": ("private_post", "https://t.me/c/1234567/89"),
}


@pytest.mark.parametrize("raw,expected", CLIENT_FORMS.items())
def test_links_read_as_telegrams_clients_read_them(raw, expected):
    parsed = parse_link(raw)
    assert (parsed.kind, parsed.normalized) == expected, parsed.reason


# Never a username: t.me paths and subdomains tdlib gives another meaning, and an empty first segment.
NOT_A_CHAT = [
    "https://t.me/call/AbCdEf",
    "https://t.me/auction/some-gift",
    "https://t.me/addstyle/Bold",
    "https://t.me/auth",
    "@auth",
    "https://t.me/newbot/pricebot/mybot",
    "https://t.me/multibuy",
    "https://joinchat.t.me/AbCdEf",
    "https://call.t.me/",
    "https://addstickers.t.me/",
    "https://boost.t.me/",
    "https://contact.t.me/",
    "https://t.me//durov",
    "https://t.me/boost",
    "https://t.me/c/1234567",
    "https://t.me/c/1234567/0",
    "https://t.me:8443/durov",
    "https://sub.durov.t.me/",
    "https://gif.t.me/",
]


@pytest.mark.parametrize("raw", NOT_A_CHAT)
def test_reserved_paths_and_hosts_are_not_usernames(raw):
    parsed = parse_link(raw)
    assert parsed.kind == "invalid", parsed
    assert parsed.reason

"""Each setup executor against the fake Telegram boundary: it reads first, changes only what is not right,
records what it set, and turns story limits into outcomes."""

import logging

import pytest
from telethon import errors
from telethon.tl import functions, types

from tests.fakes.telethon_client import FakeTelegram
from tgops.accounts.executors import EXECUTORS, STORY_PERIOD_SEC, TaskContext, execute
from tgops.accounts.media import Media, MediaStore, MediaUnavailable
from tgops.telegram.simulated import CHANGE_REQUESTS

SESSION = "exec-session"
PASSWORD = "s3cret-2fa-password"


@pytest.fixture
def telegram():
    return FakeTelegram(flood_every=0)


@pytest.fixture
async def client(telegram):
    client = telegram.factory(None, SESSION, None)
    await client.connect()
    return client


@pytest.fixture
def store(setup_settings):
    return MediaStore(setup_settings)


def changes(telegram):
    return [call.request for call in telegram.calls if call.request in {c.__name__ for c in CHANGE_REQUESTS}]


async def context_for(task_type, store, **fields):
    media = None
    if task_type in ("set_photo_jpg", "story_image"):
        media = await store.image("photo.jpg" if task_type == "set_photo_jpg" else "story.jpg")
    elif task_type in ("set_photo_animated", "story_video"):
        media = await store.video("avatar.mp4" if task_type == "set_photo_animated" else "story.mp4")
    defaults = {"first_name": "Ada", "last_name": "Lovelace", "enable_2fa": True, "password": PASSWORD}
    return TaskContext(task_type=task_type, task_id=1, media=media, **(defaults | fields))


from tests.fakes.telethon_setup import *  # noqa: E402, F403


@pytest.mark.parametrize("task_type", sorted(EXECUTORS))
async def test_every_executor_changes_once_and_a_rerun_sends_no_change(task_type, telegram, client, store):
    context = await context_for(task_type, store)

    first = await execute(context, client)
    telegram.calls.clear()
    rerun = await execute(TaskContext(**{**context.__dict__, "recorded": first.result or {}}), client)

    assert first.status == "done" and first.changed
    assert rerun.status == "done" and not rerun.changed
    assert changes(telegram) == []
    # A story is an event, not a state: its recorded id is what a rerun reads. Everything else asks Telegram.
    assert bool(telegram.calls) == (not task_type.startswith("story_"))


async def test_the_profile_ends_as_asked(telegram, client, store):
    for task_type in sorted(EXECUTORS):
        await execute(await context_for(task_type, store), client)
    profile = telegram.profiles[SESSION]

    assert profile.has_password and (profile.first_name, profile.last_name) == ("Ada", "Lovelace")
    assert profile.privacy[types.InputPrivacyKeyPhoneNumber] == [types.PrivacyValueDisallowAll()]
    assert profile.privacy[types.InputPrivacyKeyStatusTimestamp] == [types.PrivacyValueAllowAll()]
    assert [bool(photo.video_sizes) for photo in profile.photos] == [True, False]  # animated, then the JPG
    assert profile.stories == [1, 2]


async def test_a_photo_deleted_by_hand_is_set_again(telegram, client, store):
    context = await context_for("set_photo_jpg", store)
    first = await execute(context, client)
    telegram.profiles[SESSION].photos.clear()

    again = await execute(TaskContext(**{**context.__dict__, "recorded": first.result}), client)

    assert again.changed and again.result["photo_id"] != first.result["photo_id"]


async def test_uploads_name_the_file_by_keyword_and_stories_last_a_day(telegram, client, store):
    sent = []
    telegram.inject = lambda session, request: sent.append(request)
    await execute(await context_for("set_photo_animated", store), client)
    await execute(await context_for("story_video", store), client)

    photo = next(r for r in sent if isinstance(r, functions.photos.UploadProfilePhotoRequest))
    story = next(r for r in sent if isinstance(r, functions.stories.SendStoryRequest))
    assert isinstance(photo.video, types.InputFile) and photo.file is None and photo.fallback is None
    assert story.period == STORY_PERIOD_SEC
    video = story.media.attributes[0]
    assert (video.w, video.h, video.supports_streaming) == (64, 64, True) and video.duration > 0


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("STORIES_TOO_MUCH", ("retry", "STORIES_TOO_MUCH", 86400)),
        ("STORY_SEND_FLOOD_WEEKLY_3600", ("retry", "STORY_SEND_FLOOD_WEEKLY", 3600)),
        ("PREMIUM_ACCOUNT_REQUIRED", ("failed", "PREMIUM_ACCOUNT_REQUIRED", None)),
    ],
)
async def test_story_limits_become_outcomes(message, expected, telegram, client, store):
    def refuse(session, request):
        if isinstance(request, functions.stories.SendStoryRequest):
            return errors.BadRequestError(request=request, message=message)
        return None

    telegram.inject = refuse
    outcome = await execute(await context_for("story_image", store), client)

    assert (outcome.status, outcome.error_code, outcome.retry_in_sec) == expected


async def test_other_telegram_errors_reach_the_pool(telegram, client, store):
    telegram.fail_next(SESSION, errors.FloodWaitError(request=None, capture=30))
    with pytest.raises(errors.FloodWaitError):
        await execute(await context_for("update_name", store), client)


async def test_2fa_without_a_password_fails_with_a_reason_or_is_left_off(client, store, caplog):
    caplog.set_level(logging.DEBUG)
    missing = await execute(await context_for("ensure_2fa", store, password=None), client)
    off = await execute(await context_for("ensure_2fa", store, enable_2fa=False), client)
    enabled = await execute(await context_for("ensure_2fa", store), client)

    assert (missing.status, missing.error_code) == ("failed", "PASSWORD_MISSING")
    assert (off.status, off.changed, off.result["has_password"]) == ("done", False, False)
    assert enabled.changed
    assert PASSWORD not in caplog.text + repr(await context_for("ensure_2fa", store))


async def test_a_gif_becomes_an_mp4(store):
    media = await store.video("avatar.gif")

    assert media.name == "avatar.mp4" and media.data[4:8] == b"ftyp" and media.width == 64


async def test_missing_media_is_a_clear_reason(store, setup_settings):
    with pytest.raises(MediaUnavailable, match="not found"):
        await store.image("nope.jpg")
    with pytest.raises(MediaUnavailable, match="leaves the media folder"):
        await store.image("../../etc/passwd")
    with pytest.raises(MediaUnavailable, match="no media source"):
        await MediaStore(setup_settings.model_copy(update={"setup_media_dir": None})).image("photo.jpg")


async def test_media_come_from_s3_on_aws(setup_settings):
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="tgops-media")
        s3.put_object(Bucket="tgops-media", Key="photo.jpg", Body=b"\xff\xd8jpeg")
        store = MediaStore(
            setup_settings.model_copy(update={"setup_media_bucket": "tgops-media"}), s3_client=s3
        )

        assert (await store.image("photo.jpg")).data == b"\xff\xd8jpeg"
        with pytest.raises(MediaUnavailable, match="not readable"):
            await store.image("missing.jpg")


def test_media_do_not_print_their_bytes():
    assert "secret-bytes" not in repr(Media("a.jpg", b"secret-bytes"))


async def test_a_video_is_probed_once_per_content_not_once_per_task(store, media_dir, monkeypatch, tmp_path):
    from tgops.accounts import media as media_module

    probes = []
    probe = media_module.video_info
    monkeypatch.setattr(media_module, "video_info", lambda data: probes.append(len(data)) or probe(data))
    folder_store = MediaStore(store._settings.model_copy(update={"setup_media_dir": tmp_path}))
    (tmp_path / "clip.mp4").write_bytes((media_dir / "avatar.mp4").read_bytes())

    first = await folder_store.video("clip.mp4")
    again = await folder_store.video("clip.mp4")
    (tmp_path / "clip.mp4").write_bytes((media_dir / "story.mp4").read_bytes() + b"\0")  # the file changed
    changed = await folder_store.video("clip.mp4")

    assert again == first and first.width == 64
    assert changed.data != first.data and changed.width == 64
    assert len(probes) == 2

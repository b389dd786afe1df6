"""The media of photo and story tasks: from S3 on AWS, from a local folder in development.

An animated profile photo must be an MP4; a GIF is converted first with the ffmpeg binary that the
imageio-ffmpeg wheel ships. Worker-side only.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tgops.config import Settings

FFMPEG_TIMEOUT_SEC = 120
VIDEOS_KEPT = 16  # probed videos kept per store (a few configured files; more only with task payloads)


class MediaUnavailable(Exception):
    """The task's file is not configured, missing, or cannot be converted: a reason, never retried blindly."""


@dataclass(frozen=True, slots=True)
class Media:
    name: str
    data: bytes
    width: int = 0
    height: int = 0
    duration_sec: float = 0.0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def __repr__(self) -> str:
        return f"Media({self.name!r}, {len(self.data)} bytes)"


class MediaStore:
    def __init__(self, settings: Settings, *, s3_client=None) -> None:
        self._folder = settings.setup_media_dir
        self._bucket = settings.setup_media_bucket
        self._s3 = s3_client
        self._settings = settings
        # Probing a video (and converting a GIF) runs ffmpeg: done once per file content, not per account.
        self._videos: dict[tuple[str, str], Media] = {}

    async def fetch(self, name: str) -> bytes:
        if self._bucket:
            return await asyncio.to_thread(self._from_s3, name)
        if self._folder is None:
            raise MediaUnavailable(
                "no media source: set TGOPS_SETUP_MEDIA_BUCKET (AWS) or TGOPS_SETUP_MEDIA_DIR"
            )
        path = (self._folder / name).resolve()
        if self._folder.resolve() not in path.parents:
            raise MediaUnavailable(f"media name {name!r} leaves the media folder")
        try:
            return await asyncio.to_thread(path.read_bytes)
        except OSError:
            raise MediaUnavailable(f"media file {name!r} not found in {self._folder}") from None

    def _from_s3(self, name: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3", region_name=self._settings.aws_region)
        try:
            return self._s3.get_object(Bucket=self._bucket, Key=name)["Body"].read()
        except (ClientError, BotoCoreError) as error:
            raise MediaUnavailable(
                f"media object {name!r} not readable from s3://{self._bucket}: {error}"
            ) from None

    async def image(self, name: str) -> Media:
        return Media(name, await self.fetch(name))

    async def video(self, name: str) -> Media:
        """An MP4 with its size and duration (a GIF converted to MP4 first)."""
        data = await self.fetch(name)
        key = (name, hashlib.sha256(data).hexdigest())
        if key not in self._videos:
            if len(self._videos) >= VIDEOS_KEPT:
                self._videos.clear()
            self._videos[key] = await self._probed(name, data)
        return self._videos[key]

    async def _probed(self, name: str, data: bytes) -> Media:
        if data[:6] in (b"GIF87a", b"GIF89a"):
            data = await asyncio.to_thread(gif_to_mp4, data)
            name = f"{Path(name).stem}.mp4"
        width, height, duration = await asyncio.to_thread(video_info, data)
        return Media(name, data, width, height, duration)


def _ffmpeg() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise MediaUnavailable(
            "GIF and video tasks need imageio-ffmpeg (pip install imageio-ffmpeg)"
        ) from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def gif_to_mp4(data: bytes) -> bytes:
    with tempfile.TemporaryDirectory(prefix="tgops-media-") as directory:
        source, target = Path(directory, "in.gif"), Path(directory, "out.mp4")
        source.write_bytes(data)
        command = [
            _ffmpeg(), "-nostdin", "-y", "-loglevel", "error", "-i", str(source), "-an", "-movflags", "+faststart",
            "-pix_fmt", "yuv420p", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:v", "libx264", str(target),
        ]  # fmt: skip
        done = subprocess.run(
            command, check=False, stdin=subprocess.DEVNULL, capture_output=True, timeout=FFMPEG_TIMEOUT_SEC
        )
        if done.returncode != 0 or not target.exists():
            raise MediaUnavailable(f"the GIF could not be converted to MP4: {done.stderr.decode()[-200:]}")
        return target.read_bytes()


def video_info(data: bytes) -> tuple[int, int, float]:
    """Width, height and duration of a video, as Telegram's DocumentAttributeVideo wants them."""
    import imageio_ffmpeg

    with tempfile.NamedTemporaryFile(suffix=".mp4") as file:
        file.write(data)
        file.flush()
        try:
            reader = imageio_ffmpeg.read_frames(file.name)
            meta = next(reader)
            reader.close()
        except (RuntimeError, OSError, StopIteration) as error:
            raise MediaUnavailable(f"not a readable video: {type(error).__name__}") from None
    width, height = meta.get("size") or (0, 0)
    return int(width), int(height), float(meta.get("duration") or 0.0)

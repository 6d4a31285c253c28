"""Voicemail by email (issue 13, section 2): a box with an email address gets every new
message mailed with the recording attached (WAV, 8 kHz mono), the caller, the time and the
duration; the message is then kept, or deleted when the box says so (`email_keep`).

The message row is marked `email_state = 'pending'` when its recording ends (also a
partial one, the caller hung up); this task, in the media service's event loop, sends the
pending ones through the project's one mail path (tools/flow_helper.send_mail, settings
KEMI_SMTP_*) in a worker thread, so a slow or dead mail server never blocks the media
clock. A failure is logged and retried with back-off (RETRIES); after the last one the
message stays in the box as `failed` (never lost). Rows left pending by a restart are
picked up on the next start."""
from __future__ import annotations

import asyncio
import time
from email.message import EmailMessage
from email.utils import formatdate

from media import audio

RETRIES = (2.0, 5.0, 15.0, 60.0)     # seconds before each retry after a failure
POLL = 2.0                           # seconds between looks for pending rows
BATCH = 5


def compose(sender: str, to: str, box: str, caller: str, when, duration_ms: int, wav: bytes,
            message_id: int) -> EmailMessage:
    """The email for one message. Pure (for tests)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = f"Voicemail from {caller} ({duration_ms / 1000:.0f} s)"
    msg["Date"] = formatdate(localtime=False)
    stamp = when.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    msg.set_content(f"box: {box}\ncaller: {caller}\ntime: {stamp}\nduration: {duration_ms / 1000:.1f} s\n"
                    f"message: {message_id}\n")
    msg.add_attachment(wav, maintype="audio", subtype="wav", filename=f"voicemail-{box}-{message_id}.wav")
    return msg


class Mailer:
    def __init__(self, store, settings, log, send, on_deleted=None, count=None):
        self.store, self.settings, self.log, self.send = store, settings, log, send
        self.on_deleted = on_deleted            # box number -> MWI update
        self.count = count or (lambda name: None)   # the service's counters (media-stats.json)
        self.next_try: dict[int, float] = {}
        self.wake = asyncio.Event()

    def poke(self) -> None:
        self.wake.set()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), POLL)
            except asyncio.TimeoutError:
                pass
            self.wake.clear()
            try:
                await self.once()
            except Exception as err:   # the database is away: try again later
                self.log(f"voicemail email: {err!r}")

    async def once(self) -> int:
        rows = await self.store.query(
            "SELECT m.id, m.box, m.caller, m.created_at, m.duration_ms, m.email_attempts, b.email, b.email_keep "
            "FROM voicemail_message m JOIN voicemail_box b ON b.number = m.box "
            "WHERE m.email_state = 'pending' ORDER BY m.id LIMIT 50")
        now = time.monotonic()
        done = 0
        for (mid, box, caller, when, duration, attempts, address, keep) in rows:
            if done >= BATCH or self.next_try.get(mid, 0.0) > now:
                continue
            done += 1
            if not address:   # the address was removed meanwhile
                await self.store.query("UPDATE voicemail_message SET email_state = NULL WHERE id = %s", (mid,), "none")
                continue
            pcm = await self.store.message_audio(mid)
            msg = compose(self.settings.smtp_from, address, box, caller, when, duration, audio.to_wav(pcm), mid)
            try:
                await asyncio.to_thread(self.send, self.settings, msg)
            except Exception as err:
                attempts += 1
                self.count("email_failures")
                if attempts > len(RETRIES):
                    self.count("email_given_up")
                    self.log(f"voicemail email: message {mid} of box {box} to {address} given up after "
                             f"{attempts} attempts: {err!r}; the message stays in the box")
                    await self.store.query("UPDATE voicemail_message SET email_state = 'failed', email_attempts = %s "
                                           "WHERE id = %s", (attempts, mid), "none")
                    self.next_try.pop(mid, None)
                else:
                    self.log(f"voicemail email: message {mid} of box {box} to {address} failed "
                             f"(attempt {attempts}), retry in {RETRIES[attempts - 1]:.0f} s: {err!r}")
                    await self.store.query("UPDATE voicemail_message SET email_attempts = %s WHERE id = %s",
                                           (attempts, mid), "none")
                    self.next_try[mid] = time.monotonic() + RETRIES[attempts - 1]
                continue
            self.count("emails_sent")
            self.next_try.pop(mid, None)
            if keep:
                await self.store.query("UPDATE voicemail_message SET email_state = 'sent', email_attempts = %s "
                                       "WHERE id = %s", (attempts + 1, mid), "none")
                self.log(f"voicemail email: message {mid} of box {box} sent to {address}, kept")
            else:
                await self.store.drop_message(mid)
                self.log(f"voicemail email: message {mid} of box {box} sent to {address}, deleted")
                if self.on_deleted:
                    self.on_deleted(box)
        return done

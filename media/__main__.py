"""`python -m media`: the media service process (started by tools/stack.py, log in
var/log/media.log, statistics in var/run/media-stats.json every 2 s)."""
from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

from kemi import journal  # callback
from kemi.config import Settings
from media import builtin, leg, mailer, store
from media import callback_prompts  # callback
from media.supervise import runner_for  # whisper and barge, then callback, then media.runner.Runner
from media.service import Service


def log(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} media: {text}", file=sys.stderr, flush=True)


def trusted_sources(settings: Settings) -> set[str]:
    if settings.media_trusted.strip():
        return {t.strip() for t in settings.media_trusted.split(",") if t.strip()}
    return {f"{settings.sip_address}:{settings.sip_port}"}


async def main(settings: Settings) -> None:
    host, _, port = settings.media_sip.rpartition(":")
    loop = asyncio.get_running_loop()
    stats = Path(settings.var_dir) / "run" / "media-stats.json"
    stats.parent.mkdir(parents=True, exist_ok=True)
    service = Service(host, int(port), trusted_sources(settings), store.Store(settings.database_url, log), runner_for,
                      max_legs=settings.media_max_legs, stats_path=stats, log=log)
    service.proxy = (settings.sip_address, settings.sip_port)   # callback: outgoing legs go through the proxy
    journal.configure(settings.var_dir, log=log)                 # callback: journal records of its legs
    await loop.create_datagram_endpoint(lambda: service, local_addr=(host, int(port)))
    log(f"SIP on udp {host}:{port}; INVITEs accepted from {', '.join(sorted(service.trusted))}; "
        f"at most {settings.media_max_legs} calls")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reporter = loop.create_task(service.report())
    from tools.flow_helper import send_mail   # the project's one mail path (KEMI_SMTP_*)
    service.mailer = mailer.Mailer(service.store, settings, log, send_mail, on_deleted=service.message_waiting,
                                   count=service.count)
    mailing = loop.create_task(service.mailer.run())
    from media import conference_control   # conference rooms: kemictl conference status|kick
    await conference_control.start(service, settings.var_dir, log)
    from media import launcher, launcher_http   # launcher: escalating conference calls + its HTTP endpoint
    launches = loop.create_task(launcher.Launcher(service, settings, log).run())
    await launcher_http.Endpoint(service.store, settings, log, service.count).start(settings.var_dir)
    await stop.wait()
    reporter.cancel()
    mailing.cancel()
    launches.cancel()   # launcher
    log("stopping")


def run() -> int:
    settings = Settings.from_env()
    for attempt in range(30):
        try:
            builtin.ensure(settings.database_url, log=log)
            callback_prompts.ensure(settings.database_url, log=log)   # callback
            from media import launcher   # launcher
            launcher.ensure_prompts(settings.database_url, log=log)   # launcher
            break
        except Exception as err:   # the database may still be starting
            if attempt == 29:
                log(f"built-in prompts not stored: {err}")
            time.sleep(1)
    leg.realtime_priority(log)   # after espeak-ng ran: children must not inherit it
    asyncio.run(main(settings))
    return 0


if __name__ == "__main__":
    sys.exit(run())

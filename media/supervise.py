"""Supervised queue calls in the media service (issue 14 section 2): whisper, barge, listen.

`X-Kemi-App: supervised;agent=N;caller=C;ring=S` (the customer's call, sent by the proxy
when a queue with supervision on offers it to agent N): the service calls the agent back
through the proxy (media/uac.py, `X-Kemi-Origin: supervise;agent=N`), relays the agent's
ringing (180) and only answers the customer once the agent answered; an agent who does not
answer (or is busy) gives the customer's transaction a failure (480/486), which puts the
caller back in line. Answered, both legs are bridged on the media clock (media/bridge.py)
until either hangs up; then the other gets a BYE.

`X-Kemi-App: spy;call=CALL-ID;mode=listen|whisper|barge` (a supervisor's 4#/5#/6#, sent by the
proxy after checking who may supervise whom): the supervisor's leg joins that bridge; the
who-hears-whom sets come from media/supervise_core.py; DTMF 4/5/6 switch the mode.
"""
from __future__ import annotations

import asyncio

from media import apps
import numpy as np

from media.bridge import Bridge, Feed
from media.leg import Leg
from media.runner import Runner
from media.supervise_core import AGENT, CUSTOMER, Supervisor, hearing, on_key
from media.uac import OutgoingCall

ORIGIN = "X-Kemi-Origin"


def runner_for(service, call):
    """The service's runner factory: supervised calls and supervisors get theirs."""
    if isinstance(call.app, apps.Supervised):
        return SupervisedRunner(service, call)
    if isinstance(call.app, apps.Spy):
        return SpyRunner(service, call)
    from media.callback import runner_for as others
    return others(service, call)


def registry(service) -> dict:
    """Call-ID (customer's or agent's leg) -> the live SupervisedRunner."""
    return service.__dict__.setdefault("supervised", {})


class SupervisedBridge(Bridge):
    """A Bridge whose membership and hearing change while it runs (supervisors come, go and
    switch mode); the hearing sets are recomputed only on such a change, never per tick."""

    def __init__(self, customer: Leg, agent: Leg):
        super().__init__([customer, agent])
        self.named: dict[str, Leg] = {CUSTOMER: customer, AGENT: agent}
        self.supervisors: dict[str, Supervisor] = {}
        self._rehear()

    def _rehear(self) -> None:
        sets = hearing(tuple(self.supervisors.values()))
        self.hears = {self.named[k]: {self.named[x] for x in v} for k, v in sets.items()}

    def add(self, key: str, leg: Leg, mode: str) -> None:
        self.supervisors[key] = Supervisor(key, mode)
        self.named[key] = leg
        self.legs.append(leg)
        self.buffers[leg] = np.zeros(0, dtype=np.int16)
        leg.stop_playing()
        leg.recording = []
        feed = Feed(self, leg)
        feed.index = self.frames
        self.feeds[leg] = feed
        leg.player = feed
        self._rehear()

    def set_mode(self, key: str, mode: str) -> None:
        self.supervisors[key] = Supervisor(key, mode)
        self._rehear()

    def remove(self, key: str) -> None:
        leg = self.named.pop(key, None)
        self.supervisors.pop(key, None)
        if leg is None:
            return
        self.legs = [x for x in self.legs if x is not leg]
        self.buffers.pop(leg, None)
        feed = self.feeds.pop(leg, None)
        if feed is not None and leg.player is feed:
            leg.stop_playing()
        leg.recording = None
        self._rehear()


class SupervisedRunner(Runner):
    """The customer's leg of a supervised queue call."""

    def __init__(self, service, call):
        super().__init__(service, call)
        self.agent: OutgoingCall | None = None
        self.bridge: SupervisedBridge | None = None
        self.ended = asyncio.Event()

    async def check(self):
        app = self.app
        call_id = self.call.invite.call_id
        agent = self.agent = OutgoingCall(self.service, app.agent, app.caller or "queue",
                                          [(ORIGIN, f"supervise;agent={app.agent}")])
        task = asyncio.get_running_loop().create_task(agent.start(app.ring))
        try:
            ringing = asyncio.ensure_future(agent.provisional.wait())
            await asyncio.wait([task, ringing], return_when=asyncio.FIRST_COMPLETED)
            ringing.cancel()
            if not task.done():
                self.call.last = self.service.reply(self.call.invite, self.call.source, 180, "Ringing", self.call)
            status = await task
        except asyncio.CancelledError:      # the customer hung up, or the proxy CANCELled the offer
            task.cancel()
            raise
        if status != 200:
            self.log(f"supervised: agent {app.agent} did not take the call: {status}")
            self.service.count("supervised_unanswered")
            if status in (486, 600):
                return 486, f"Busy Here - agent {app.agent} is busy"
            return 480, f"Temporarily Unavailable - agent {app.agent} did not answer"
        reg = registry(self.service)
        reg[call_id] = reg[agent.call_id] = self
        self.service.count("supervised_calls")
        self.log(f"supervised: agent {app.agent} answered (leg {agent.call_id})")
        return None

    async def run(self):
        agent = self.agent
        self.bridge = SupervisedBridge(self.leg, agent.leg)
        self.bridge.start()
        try:
            await agent.ended.wait()          # the customer's BYE cancels this task instead
            self.log("supervised: the agent hung up")
            return "done", ""
        finally:
            self.ended.set()
            self.bridge.stop()
            if not agent.ended.is_set():
                agent.bye()
            reg = registry(self.service)
            reg.pop(self.call.invite.call_id, None)
            reg.pop(agent.call_id, None)

    async def cancelled(self) -> None:
        if self.agent is not None and self.agent.ok is not None and not self.agent.ended.is_set():
            self.agent.bye()


class SpyRunner(Runner):
    """A supervisor on a supervised call: listen, whisper or barge, switched by DTMF."""

    async def check(self):
        session = registry(self.service).get(self.app.call)
        if session is None or session.bridge is None or session.ended.is_set():
            return 404, "Not Found - that call is not bridged by the media service (any more)"
        self.session = session
        return None

    async def run(self):
        session: SupervisedRunner = self.session
        key = f"supervisor:{self.call.invite.call_id}"
        mode = self.app.mode
        session.bridge.add(key, self.leg, mode)
        self.service.count(f"supervise_{mode}")
        self.log(f"supervisor joins call {self.app.call} ({mode})")
        ended = asyncio.ensure_future(session.ended.wait())
        try:
            while not ended.done():
                digit = asyncio.ensure_future(self.leg.digits.get())
                await asyncio.wait([digit, ended], return_when=asyncio.FIRST_COMPLETED)
                if not digit.done():
                    digit.cancel()
                    break
                new = on_key(mode, digit.result())
                if new != mode:
                    mode = new
                    session.bridge.set_mode(key, mode)
                    self.service.count(f"supervise_{mode}")
                    self.log(f"supervisor on {self.app.call}: now {mode}")
            return "done", ""
        finally:
            ended.cancel()
            if session.bridge is not None:
                session.bridge.remove(key)

"""NAT traversal and media anchoring for phones (issue 12): the only code that decides how a
message's Contact, destination and SDP are fixed for phones behind NAT. KSR adapter; the
offer/answer table is kemi.sdp_offer.

The usual Kamailio pattern (the reference KEMI config's NATDETECT / NATMANAGE routes):
- every request: `force_rport()`, so replies go back to where it came from, not to its Via;
- a request from a phone behind NAT (`nat_uac_test`) gets `;alias=ip~port~proto` on its
  Contact (`set_contact_alias`), so the far end's in-dialog requests (BYE, re-INVITE, REFER)
  carry the public address in their Request-URI; `handle_ruri_alias()` turns it back into
  the destination when they come through here (record-routed);
- replies from a phone behind NAT (the callee's 200 OK) get the same alias;
- a new call from behind NAT marks its Record-Route with `;nat=yes`;
- REGISTER from behind NAT: `fix_nated_register()` keeps the public address (received) and
  the contact gets the NAT branch flags, so nathelper pings it (SIP OPTIONS) to keep the
  binding open (natping_interval in kamailio.cfg);
- rtpengine takes the media address from the signalling source for NATed phones
  (`SIP-source-address`) and learns the port from the first packet.
"""
from __future__ import annotations

import KSR  # provided by app_python3

from kemi import sdp_offer
from kemi.ksr import log_info, pv

# nat_uac_test bits (5.6): 1 private Contact, 2 Via address != source, 16 Via port != source
# port, 128 Contact port != source port.
REQUEST_TEST = 1 | 2 | 16            # as the reference config (19): a Contact test would
                                  # misfire on phones that register another port
REPLY_TEST = 1 | 128              # a reply's top Via is ours: test its Contact only
FLT_NATS = 5                      # message flag: the sender of this request is behind NAT
FLB_NATB = 6                      # branch flags, saved with the contact (usrloc nat_bflag)
FLB_NATSIPPING = 7                # nathelper sipping_bflag: OPTIONS keepalives to it


def on_request(method: str) -> bool:
    """First thing for every request: rport, NAT detection, Contact alias. True when the
    sender is behind NAT."""
    KSR.force_rport()
    if KSR.nathelper.nat_uac_test(REQUEST_TEST) <= 0:
        return False
    KSR.setflag(FLT_NATS)
    if method == "REGISTER":
        return True     # kemi.handler's register route fixes it (fix_nated_register)
    if method not in ("ACK", "CANCEL") and KSR.siputils.is_first_hop() > 0:
        KSR.nathelper.set_contact_alias()
    return True


def nated() -> bool:
    return KSR.isflagset(FLT_NATS)


def on_register() -> None:
    """Before registrar.save(): remember the public address and keep the binding alive."""
    KSR.nathelper.fix_nated_register()
    if nated():
        KSR.setbflag(FLB_NATB)
        KSR.setbflag(FLB_NATSIPPING)


def on_new_call() -> None:
    """A new call: in-dialog requests know it involved a NATed caller."""
    if nated():
        KSR.rr.add_rr_param(";nat=yes")


def on_loose_route() -> None:
    """An in-dialog request that passed loose_route(): send it to the NATed address the
    Request-URI's alias names (unless a Route already set the destination)."""
    if KSR.rr.check_route_param("nat=yes") > 0:
        KSR.setbflag(FLB_NATB)
    if KSR.isdsturiset() <= 0 and "alias=" in (pv("$ru") or ""):
        if KSR.nathelper.handle_ruri_alias() < 0:
            log_info(f"nat: bad alias in {pv('$ru')}")


def on_reply() -> bool:
    """A reply from a phone behind NAT: alias its Contact. True when it is NATed."""
    if KSR.nathelper.nat_uac_test(REPLY_TEST) <= 0:
        return False
    KSR.nathelper.set_contact_alias()
    return True


def media_request(method: str) -> None:
    """SDP of a request (initial or in-dialog) through rtpengine, in whatever order it comes."""
    _apply(sdp_offer.action(True, method, KSR.sdpops.sdp_content() > 0), nated())


def media_reply(nated_sender: bool) -> None:
    method = pv("$rm") or ""     # in a reply: the CSeq method
    status = int(pv("$rs") or 0)
    _apply(sdp_offer.action(False, method, KSR.sdpops.sdp_content() > 0, status), nated_sender)


def _apply(action: str | None, nated_sender: bool) -> None:
    if action == sdp_offer.MANAGE:
        KSR.rtpengine.rtpengine_manage(sdp_offer.flags(nated_sender))
    elif action == sdp_offer.ANSWER:
        KSR.rtpengine.rtpengine_answer(sdp_offer.flags(nated_sender))
    elif action == sdp_offer.DELETE:
        KSR.rtpengine.rtpengine_delete0()

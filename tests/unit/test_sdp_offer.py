"""The offer/answer table: which rtpengine operation each message's SDP needs."""
import pytest

from kemi import sdp_offer
from kemi.sdp_offer import ANSWER, DELETE, MANAGE

CASES = [
    # request?, method, SDP?, status, action
    (True, "INVITE", True, 0, MANAGE),      # early offer, or re-INVITE with an offer
    (True, "INVITE", False, 0, None),       # late offer: the offer comes in the 2xx
    (True, "ACK", True, 0, MANAGE),         # the answer to a late offer
    (True, "ACK", False, 0, None),
    (True, "PRACK", True, 0, ANSWER),       # the answer to a reliable 18x's offer
    (True, "PRACK", False, 0, None),
    (True, "UPDATE", True, 0, MANAGE),
    (True, "UPDATE", False, 0, None),
    (True, "BYE", False, 0, DELETE),
    (True, "CANCEL", False, 0, DELETE),
    (True, "OPTIONS", True, 0, None),
    (True, "REFER", False, 0, None),
    (False, "INVITE", True, 180, MANAGE),   # early media answer (or 18x offer)
    (False, "INVITE", True, 183, MANAGE),
    (False, "INVITE", True, 200, MANAGE),   # answer, or the offer of a late-offer call
    (False, "INVITE", False, 200, None),
    (False, "INVITE", False, 180, None),
    (False, "INVITE", True, 100, None),
    (False, "INVITE", True, 486, None),     # failures are for the failure routes
    (False, "INVITE", True, 488, None),
    (False, "UPDATE", True, 200, MANAGE),
    (False, "UPDATE", True, 183, None),
    (False, "PRACK", True, 200, None),
    (False, "BYE", True, 200, None),
]


@pytest.mark.parametrize("is_request,method,has_sdp,status,expected", CASES)
def test_action(is_request, method, has_sdp, status, expected):
    assert sdp_offer.action(is_request, method, has_sdp, status) == expected


def test_nat_flags_only_for_nated_senders():
    assert "SIP-source-address" in sdp_offer.flags(True)
    assert "SIP-source-address" not in sdp_offer.flags(False)

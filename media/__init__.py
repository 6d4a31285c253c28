"""The product's own media service (issue 13): a SIP user agent with a G.711 RTP engine that
answers calls the proxy relays to it, plays stored audio, collects digits and records
voicemail. Pure modules (g711, rtp, sip, sdp, apps, menu, vmkeys, audio) decide and encode;
service.py (SIP transport and dialogs), leg.py (RTP legs and the media clock) and store.py
(PostgreSQL) act."""

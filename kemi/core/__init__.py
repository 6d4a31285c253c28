"""The pure core of call flows: no KSR, no I/O, frozen dataclasses, typed results.

flow.py       the model (Flow, Node) and its parsing from / to plain data (YAML, JSON)
nodes.py      the node types as a table: settings, outcomes, what runs them
timerules.py  weekly hours, dated exceptions, time zones
validate.py   every rule a flow must pass, errors naming the node and the field
machine.py    the per-call state machine: (state, event) -> (state, actions)
media.py      the media-service contract (X-Kemi-App / X-Kemi-Outcome encoding)
"""

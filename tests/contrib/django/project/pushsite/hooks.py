"""An event hook named by its dotted path in settings.APNSKIT["EVENT_HOOK"]."""

import apnskit

EVENTS: list[apnskit.ClientEvent] = []


def record(event: apnskit.ClientEvent) -> None:
    EVENTS.append(event)

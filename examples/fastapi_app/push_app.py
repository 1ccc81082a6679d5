"""FastAPI (or Starlette) with apnskit: one AsyncPushClient per app.

The app's lifespan opens and closes the client; a dependency hands it to routes. Run it from
this folder (``pip install apnskit fastapi uvicorn``), with the APNS_* variables set::

    export APNS_KEY_FILE=AuthKey_ABC123DEFG.p8 APNS_TEAM_ID=DEF123GHIJ
    export APNS_ENVIRONMENT=sandbox APNS_TOPIC=com.example.app
    uvicorn push_app:app

Why this shape:

- One client per app, not per request: the client keeps its HTTP/2 connections to APNs open
  and multiplexes every request's notifications over them. A client per request would pay a
  TLS handshake each time, and Apple treats rapid reconnects as a denial-of-service attack.
- The lifespan opens it on the server's event loop and closes it (GOAWAY, connections
  released) at shutdown; with several worker processes, each worker has its own.
- Routes get it through a dependency, so a test can swap in another one
  (``app.dependency_overrides``) and the routes never reach for a global.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

import apnskit


def client_from_environment() -> apnskit.AsyncPushClient:
    """An AsyncPushClient configured from APNS_* environment variables."""
    credentials = apnskit.TokenCredentials.from_file(
        os.environ["APNS_KEY_FILE"], team_id=os.environ["APNS_TEAM_ID"]
    )
    return apnskit.AsyncPushClient(credentials, environment=os.environ["APNS_ENVIRONMENT"])


class NotifyRequest(BaseModel):
    """One notification to one device."""

    device_token: str = Field(description="The device token, hex")
    title: str
    body: str


class NotifyResponse(BaseModel):
    """What APNs answered."""

    accepted: bool
    status: int | None
    reason: str | None
    apns_id: str | None


class BroadcastRequest(BaseModel):
    """The same alert to many devices."""

    device_tokens: list[str]
    body: str


class BroadcastResponse(BaseModel):
    """How many were accepted, and which tokens APNs called invalid (forget them)."""

    accepted: int
    invalid_tokens: list[str]
    failed: int


def get_push_client(request: Request) -> apnskit.AsyncPushClient:
    """The dependency that hands the app's client to a route."""
    client: apnskit.AsyncPushClient = request.app.state.push_client
    return client


PushClient = Annotated[apnskit.AsyncPushClient, Depends(get_push_client)]


def create_app(
    make_client: Callable[[], apnskit.AsyncPushClient] = client_from_environment,
    topic: str | None = None,
) -> FastAPI:
    """Build the app.

    Args:
        make_client: Makes the app's one client, at startup.
        topic: The apns-topic (bundle ID); default: the APNS_TOPIC environment variable.
    """
    app_topic = topic or os.environ.get("APNS_TOPIC", "com.example.app")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with make_client() as client:  # closed at shutdown, even after an error
            app.state.push_client = client
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/notify")
    async def notify(request: NotifyRequest, client: PushClient) -> NotifyResponse:
        try:
            notification = apnskit.Notification(
                request.device_token,
                apnskit.Payload(alert=apnskit.Alert(title=request.title, body=request.body)),
                topic=app_topic,
            )
        except apnskit.InvalidNotificationError as error:
            # Bad input is the caller's fault: 422, before anything is sent.
            raise HTTPException(status_code=422, detail=str(error)) from None
        result = await client.send(notification)
        if result.failed:
            # No answer from APNs (connection lost, deadline): a gateway problem.
            raise HTTPException(status_code=502, detail=type(result.error).__name__)
        return NotifyResponse(
            accepted=result.accepted,
            status=result.status,
            reason=None if result.reason is None else str(result.reason),
            apns_id=result.apns_id,
        )

    @app.post("/broadcast")
    async def broadcast(request: BroadcastRequest, client: PushClient) -> BroadcastResponse:
        notifications = [
            apnskit.Notification(token, apnskit.Payload(alert=request.body), topic=app_topic)
            for token in request.device_tokens
        ]
        accepted, failed, invalid = 0, 0, []
        # Pipelined over the client's connections; results arrive as they complete.
        async for result in client.send_many(notifications):
            if result.accepted:
                accepted += 1
            elif result.token_invalid:
                invalid.append(result.notification.device_token)
            else:
                failed += 1
        return BroadcastResponse(accepted=accepted, invalid_tokens=invalid, failed=failed)

    return app


# For ``uvicorn push_app:app``; the client is made at startup, not at import.
app = create_app()

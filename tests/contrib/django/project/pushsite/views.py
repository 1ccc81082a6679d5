"""A view that sends a notification per request, sync and async."""

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

import apnskit
from apnskit.contrib.django import asend, send


def _answer(result: apnskit.PushResult) -> JsonResponse:
    return JsonResponse(
        {"accepted": result.accepted, "status": result.status, "reason": result.reason},
        status=200 if result.accepted else 502,
    )


@require_POST
def notify(request: HttpRequest) -> JsonResponse:
    data = json.loads(request.body)
    return _answer(send(data["device_token"], {"aps": {"alert": data["message"]}}))


@require_POST
async def anotify(request: HttpRequest) -> JsonResponse:
    data = json.loads(request.body)
    return _answer(await asend(data["device_token"], {"aps": {"alert": data["message"]}}))

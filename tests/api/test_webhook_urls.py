"""The webhook URL policy judges an address by where it finally leads: IPv4 addresses
embedded in IPv6 (mapped, compatible, NAT64, 6to4, Teredo) are unwrapped first, and a URL
that does not even parse is a clear refusal, not INTERNAL."""

from __future__ import annotations

import grpc
import pytest
from honcho_grpc_proto.v1 import webhook_pb2, webhook_pb2_grpc, workspace_pb2

from honcho_grpc.domain.webhooks import is_public
from tests.conftest import Stubs
from tests.helpers import fails

INVALID = grpc.StatusCode.INVALID_ARGUMENT

LEADS_INSIDE = [
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::127.0.0.1", "::10.1.2.3",
    "64:ff9b::127.0.0.1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::a00:1",
    "2002:7f00:1::1", "2002:c0a8:101::", "2002:a9fe:a9fe::1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "::1", "::", "fe80::1", "fc00::1", "ff02::1", "100.64.0.1", "169.254.169.254",
]
LEADS_OUTSIDE = ["93.184.215.14", "2606:4700::1111", "64:ff9b::5db8:d70e", "2002:5db8:d70e::1"]


@pytest.mark.parametrize("address", LEADS_INSIDE)
def test_addresses_that_lead_inside_are_not_public(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", LEADS_OUTSIDE)
def test_public_addresses_stay_public(address: str) -> None:
    assert is_public(address)


@pytest.mark.parametrize("url", [
    "http://[64:ff9b::7f00:1]/h", "http://[2002:a00:1::1]/h", "http://[::7f00:1]/h",
    "https://[::ffff:a9fe:a9fe]/latest", "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/h",
    "http://[::1/", "http://[::1]:99999/", "http://example.com:port/", "http://a@example.com/",
    "http://exa\tmple.com/", "javascript:alert(1)", "http:///nohost",
])
async def test_refused_urls(stubs: Stubs, ws: str, url: str) -> None:
    await stubs.workspaces.GetOrCreateWorkspace(workspace_pb2.GetOrCreateWorkspaceRequest(
        workspace_id=ws))
    api = webhook_pb2_grpc.WebhookServiceStub(stubs.channel)
    await fails(api.CreateWebhookEndpoint(webhook_pb2.CreateWebhookEndpointRequest(
        workspace_id=ws, url=url)), INVALID, reason="WEBHOOK_URL_REFUSED", field="url")
    listed = await api.ListWebhookEndpoints(webhook_pb2.ListWebhookEndpointsRequest(
        workspace_id=ws))
    assert not listed.endpoints

"""The emulator's SES v2 (moto's, moto_server.py 4 and 7), as the vault's email notifications use it: an identity
created with CreateEmailIdentity, SendEmail with Simple content from an address at it, the message listed by
/_ledgix/ses/messages, the calls recorded by name under the caller's access key, and an unverified sender refused
with MessageRejected. One moto_server.py subprocess on a free loopback port serves the whole module."""

from __future__ import annotations

import json
import os

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import servers

http = servers.http
NO_RETRIES = Config(retries={"total_max_attempts": 1})
DOMAIN = "alerts.ledgix-test.example"


@pytest.fixture(scope="module")
def endpoint():
    proc, url = servers.start("moto_server.py", ready="/_ledgix/ses/messages")
    yield url
    servers.stop(proc)


def client(endpoint: str, access_key: str = "test", region: str = "us-east-1"):
    return boto3.client("sesv2", endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key,
                        aws_secret_access_key="test", config=NO_RETRIES)


def simple(subject: str, text: str) -> dict:
    return {"Simple": {"Subject": {"Data": subject, "Charset": "UTF-8"},
                       "Body": {"Text": {"Data": text, "Charset": "UTF-8"}}}}


def messages(endpoint: str, query: str = "") -> list[dict]:
    status, answer = http("GET", f"{endpoint}/_ledgix/ses/messages{query}")
    assert status == 200, answer
    return json.loads(answer)


def test_send_email_from_a_domain_identity_is_listed_and_recorded(endpoint):
    ses = client(endpoint, access_key="SESSENDER")
    assert ses.create_email_identity(EmailIdentity=DOMAIN)["IdentityType"] == "DOMAIN"
    assert ses.get_email_identity(EmailIdentity=DOMAIN)["IdentityType"] == "DOMAIN"
    body = "Review needed for erase_records.\nRequest: req_123\nDelivery: dl_abc"
    sent = ses.send_email(FromEmailAddress=f"vault@{DOMAIN}",
                          Destination={"ToAddresses": ["reviewers@example.com", "ops@example.com"]},
                          Content=simple("[Ledgix] Review needed: erase_records", body))

    listed = [m for m in messages(endpoint, "?region=us-east-1") if m["id"] == sent["MessageId"]]
    assert listed == [{"id": sent["MessageId"], "source": f"vault@{DOMAIN}",
                       "destinations": {"ToAddresses": ["reviewers@example.com", "ops@example.com"]},
                       "subject": "[Ledgix] Review needed: erase_records", "body": body}]
    # The region defaults to the server's AWS_DEFAULT_REGION (inherited from this process), else us-east-1; another
    # region's backend is separate.
    default_region = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    assert (sent["MessageId"] in {m["id"] for m in messages(endpoint)}) == (default_region == "us-east-1")
    assert sent["MessageId"] not in {m["id"] for m in messages(endpoint, "?region=eu-west-1")}

    status, answer = http("GET", f"{endpoint}/_ledgix/calls?access_key=SESSENDER")
    assert status == 200
    assert json.loads(answer) == [{"service": "ses", "operation": "CreateEmailIdentity", "count": 1},
                                  {"service": "ses", "operation": "GetEmailIdentity", "count": 1},
                                  {"service": "ses", "operation": "SendEmail", "count": 1}]


def test_an_address_identity_allows_that_address_only(endpoint):
    ses = client(endpoint)
    ses.create_email_identity(EmailIdentity="alerts@example.org")
    sent = ses.send_email(FromEmailAddress="alerts@example.org", Destination={"ToAddresses": ["a@example.com"]},
                          Content=simple("s", "b"))
    assert sent["MessageId"] in {m["id"] for m in messages(endpoint, "?region=us-east-1")}
    with pytest.raises(ClientError) as err:
        ses.send_email(FromEmailAddress="other@example.org", Destination={"ToAddresses": ["a@example.com"]},
                       Content=simple("s", "b"))
    assert err.value.response["Error"]["Code"] == "MessageRejected"


def test_unverified_sender_is_rejected(endpoint):
    ses = client(endpoint, access_key="SESREJECTED")
    before = len(messages(endpoint, "?region=us-east-1"))
    with pytest.raises(ClientError) as err:
        ses.send_email(FromEmailAddress="vault@unverified.example", Destination={"ToAddresses": ["a@example.com"]},
                       Content=simple("s", "b"))
    assert err.value.response["Error"]["Code"] == "MessageRejected"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "vault@unverified.example" in err.value.response["Error"]["Message"]
    assert len(messages(endpoint, "?region=us-east-1")) == before
    status, answer = http("GET", f"{endpoint}/_ledgix/calls?access_key=SESREJECTED")
    assert json.loads(answer) == [{"service": "ses", "operation": "SendEmail", "count": 1}]


@pytest.mark.parametrize("query", ["?region=nowhere", "?account=12", "?region=us-east-1&account=abc"])
def test_messages_route_refuses_bad_input(endpoint, query):
    status, answer = http("GET", f"{endpoint}/_ledgix/ses/messages{query}")
    assert status == 400 and "error" in json.loads(answer)
    assert http("POST", f"{endpoint}/_ledgix/ses/messages", {})[0] == 405

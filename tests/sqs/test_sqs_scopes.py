"""Scopes of SQS credentials (HTQ_SQS_CREDENTIALS entries `AKID:SECRET:scope+scope`): each action
needs the scope app/scopes.py gives it, else 403 AccessDenied in AWS's shape; an entry without
scopes may do everything, as before scopes existed."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from app.core.tokens import SCOPES
from app.scopes import SQS_ACTION_SCOPES, sqs_action_scope
from config.settings import SCOPE_NAMES, ConfigError, load_settings
from tests.support.sqs import KEY_ID, SECRET, client, start_web

READER, PUBLISHER, CONSUMER = ("AKIDREADER", "r-secret"), ("AKIDPUB", "p:secret"), ("AKIDCONS", "c-secret")


@pytest.fixture(scope="module")
def scoped_url(redis_server, tmp_path_factory):
    credentials = ",".join([f"{KEY_ID}:{SECRET}", f"{READER[0]}:{READER[1]}:read",
                            f"{PUBLISHER[0]}:{PUBLISHER[1]}:publish+read", f"{CONSUMER[0]}:{CONSUMER[1]}:consume"])
    procs, base = start_web(redis_server, tmp_path_factory, HTQ_SQS_CREDENTIALS=credentials)
    yield base
    procs.stop_all()


def denied(call, action: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        call()
    response = excinfo.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert response["Error"]["Code"] == "AccessDenied", response
    assert f"sqs:{action}" in response["Error"]["Message"]


def test_each_credential_may_do_what_its_scopes_allow_and_nothing_more(scoped_url, redis_url):
    admin = client(scoped_url)  # no scopes given: everything
    url = admin.create_queue(QueueName="orders")["QueueUrl"]
    reader, publisher, consumer = (client(scoped_url, *pair) for pair in (READER, PUBLISHER, CONSUMER))

    assert reader.get_queue_url(QueueName="orders")["QueueUrl"] == url
    assert reader.list_queues()["QueueUrls"] == [url]
    reader.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    denied(lambda: reader.send_message(QueueUrl=url, MessageBody="x"), "SendMessage")
    denied(lambda: reader.receive_message(QueueUrl=url), "ReceiveMessage")
    denied(lambda: reader.create_queue(QueueName="other"), "CreateQueue")

    publisher.send_message(QueueUrl=url, MessageBody="one")  # the secret holds ':' and still signs
    publisher.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "two"}])
    assert publisher.get_queue_url(QueueName="orders")["QueueUrl"] == url
    denied(lambda: publisher.receive_message(QueueUrl=url), "ReceiveMessage")
    denied(lambda: publisher.purge_queue(QueueUrl=url), "PurgeQueue")

    received = consumer.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in received) == ["one", "two"]
    consumer.change_message_visibility(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"], VisibilityTimeout=5)
    consumer.delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])
    denied(lambda: consumer.send_message(QueueUrl=url, MessageBody="x"), "SendMessage")
    denied(lambda: consumer.get_queue_url(QueueName="orders"), "GetQueueUrl")
    denied(lambda: consumer.set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "1"}),
           "SetQueueAttributes")
    denied(lambda: consumer.delete_queue(QueueUrl=url), "DeleteQueue")
    admin.delete_queue(QueueUrl=url)


def test_every_action_of_the_contract_has_a_scope():
    actions = ["CreateQueue", "GetQueueUrl", "ListQueues", "DeleteQueue", "GetQueueAttributes", "SetQueueAttributes",
               "PurgeQueue", "SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage",
               "DeleteMessageBatch", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch",
               "ListDeadLetterSourceQueues"]
    assert set(actions) <= set(SQS_ACTION_SCOPES)
    assert sqs_action_scope("NoSuchAction") == "admin"
    assert SCOPE_NAMES == SCOPES


def test_credentials_read_their_scopes_and_stay_as_they_were_without():
    settings = load_settings({"HTQ_SQS_CREDENTIALS": "A1:s1, A2:se:cret , A3:s3:read+consume, A4:s:4:admin, "
                                                     "A5:s5:read+nope"})
    assert settings.sqs_credentials == (("A1", "s1"), ("A2", "se:cret"), ("A3", "s3"), ("A4", "s:4"),
                                        ("A5", "s5:read+nope"))
    assert settings.sqs_scopes == {"A1": frozenset(SCOPES), "A2": frozenset(SCOPES),
                                   "A3": frozenset({"read", "consume"}), "A4": frozenset({"admin"}),
                                   "A5": frozenset(SCOPES)}
    for bad in ("A1", "A1:", ":s", "A1::read"):
        with pytest.raises(ConfigError):
            load_settings({"HTQ_SQS_CREDENTIALS": bad})

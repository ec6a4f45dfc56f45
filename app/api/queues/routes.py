"""Routes of /v1/queues: named message queues with visibility timeouts, long polling and dead letters.

A bad queue name is 422 on the routes that create a queue (PUT, push) and 404 on the routes that
look one up (no queue can have it); a queue that was never created is 404 everywhere but PUT and
push, which create it.
"""
from __future__ import annotations

from flask import abort, jsonify, request
from flask.views import MethodView

from app.api import examples
from app.api.common import BODY_METHODS, Blueprint, abort_malformed
from app.api.queues.schemas import (
    AckBatchSchema,
    AckResultSchema,
    BatchPushSchema,
    DeadArgsSchema,
    DeadListSchema,
    IdSchema,
    IdsSchema,
    MovedSchema,
    PushArgsSchema,
    QueueConfigSchema,
    QueueListSchema,
    QueueSchema,
    ReceiptArgsSchema,
    ReceivedSchema,
    ReceiveSchema,
    VisibilityResultSchema,
    VisibilitySchema,
)
from app.core import jsontext
from app.core.queues import embedded_body, json_body, json_text_body, text_body
from app.extensions import services

blp = Blueprint("queues", __name__, url_prefix="/v1/queues",
                description="Named message queues: push, receive with a visibility timeout, acknowledge.")

PUSH_ENDPOINT = "queues.push_message"
MESSAGE_BODY_DOC = {
    "required": True,
    "description": "The message: any JSON (`application/json`) or text (`text/plain`).",
    "content": {"application/json": {"schema": {}, "example": examples.MESSAGE},
                "text/plain": {"schema": {"type": "string"}, "example": "a line of text"}},
}


@blp.before_request
def _check_content_type():
    """415 for a body that is not JSON (or, for a single message, text), before any view runs."""
    if request.method in BODY_METHODS and (request.content_length or request.headers.get("Transfer-Encoding")):
        if request.endpoint == PUSH_ENDPOINT and request.mimetype == "text/plain":
            return
        if not request.is_json:
            abort(415, description="Send the body as application/json"
                  + (" or text/plain." if request.endpoint == PUSH_ENDPOINT else "."))


def _message_body() -> str:
    """The request body as a stored message: JSON kept as sent (once checked), or text."""
    if request.mimetype == "text/plain":
        try:
            return text_body(request.get_data().decode(request.mimetype_params.get("charset", "utf-8")))
        except (UnicodeDecodeError, LookupError):
            abort(400, description="The text is not in its declared charset.")
    if not request.is_json:
        abort(415, description="Send the message as application/json or text/plain.")
    try:
        text = request.get_data().decode("utf-8")
        jsontext.loads(text)
    except ValueError as exc:  # UnicodeDecodeError is one too
        abort_malformed(exc)
    return json_text_body(text)


@blp.route("")
@blp.response(200, QueueListSchema, example=examples.QUEUE_LIST)
def list_queues():
    """Every queue with its config and counts, by name."""
    return {"items": services().queues.list()}


@blp.route("/<name:name>")
class Queue(MethodView):
    @blp.arguments(QueueConfigSchema, required=False, example=examples.QUEUE_CONFIG)
    @blp.response(200, QueueSchema, description="Updated", example=examples.QUEUE)
    @blp.alt_response(201, schema=QueueSchema, description="Created", example=examples.QUEUE)
    def put(self, fields, name):
        """Create the queue (201) or replace its config (200). PUT replaces: a field left out takes
        its default, whatever it was before (as on `PUT /v1/batches/{name}`); send every field you
        want to keep. 422 for a name outside `[A-Za-z0-9_-]{1,80}`."""
        queue, created = services().queues.put(name, fields)
        return queue, 201 if created else 200

    @blp.response(200, QueueSchema, example=examples.QUEUE)
    def get(self, name):
        """The queue's config and exact counts: `visible`, `in_flight`, `delayed`, `dead`. 404 if unknown."""
        return services().queues.get(name)

    @blp.response(204)
    def delete(self, name):
        """Delete the queue and all its messages. 404 if unknown."""
        services().queues.delete(name)


@blp.route("/<name:name>/messages", methods=["POST"])
@blp.arguments(PushArgsSchema, location="query")
@blp.doc(requestBody=MESSAGE_BODY_DOC)
@blp.response(201, IdSchema, example=examples.MESSAGE_CREATED)
def push_message(args, name):
    """Push one message: the request body, any JSON (`application/json`) or text (`text/plain`),
    at most the body limit (413). The queue is created with the defaults if it does not exist.
    `delay` (seconds) overrides the queue's delay."""
    message_id = services().queues.push(name, _message_body(), args.get("delay"))
    return jsonify(id=message_id), 201, {"Location": f"/v1/queues/{name}/messages/{message_id}"}


@blp.route("/<name:name>/messages/batch", methods=["POST"])
@blp.arguments(BatchPushSchema, example=examples.MESSAGE_BATCH)
@blp.response(201, IdsSchema, example=examples.MESSAGE_IDS)
def push_batch(body, name):
    """Push up to 100 messages at once, in order: all are checked first, none is stored if one
    is refused. Each `body` is any JSON; each `delay` overrides the queue's."""
    messages = [(json_body(item["body"]), item.get("delay")) for item in body["messages"]]
    return jsonify(ids=services().queues.push_many(name, messages)), 201


@blp.route("/<name:name>/messages/receive", methods=["POST"])
@blp.arguments(ReceiveSchema, example=examples.RECEIVE)
@blp.response(200, ReceivedSchema, example=examples.RECEIVED)
def receive(args, name):
    """Receive up to `max` visible messages, oldest available first. Each is locked for
    `visibility_timeout` seconds (the queue's by default) under a fresh `receipt`; acknowledge it
    before then or it becomes visible again. With `wait` (up to 20 s), waits for a message to
    arrive and answers as soon as one does; `[]` when none came. 404 if the queue is unknown."""
    return jsonify(messages=services().queues.receive(name, args["max"], args.get("visibility_timeout"),
                                                      args["wait"], body=embedded_body))


@blp.route("/<name:name>/messages/ack", methods=["POST"])
@blp.arguments(AckBatchSchema, example=examples.ACK_BATCH)
@blp.response(200, AckResultSchema, example=examples.ACK_RESULT)
def ack_batch(body, name):
    """Acknowledge up to 100 messages. Each failure is listed with its reason: `not_found`
    (unknown or already acknowledged) or `stale` (the receipt is not the current one)."""
    return jsonify(services().queues.ack_many(name, [(item["id"], item.get("receipt")) for item in body["messages"]]))


@blp.route("/<name:name>/messages/<message_id:message_id>")
class Message(MethodView):
    @blp.arguments(ReceiptArgsSchema, location="query")
    @blp.response(204)
    def delete(self, args, name, message_id):
        """Acknowledge (delete) a message. With `receipt`, 409 if the message was received again
        since (or moved to the dead letters); 404 if unknown or already acknowledged."""
        services().queues.ack(name, message_id, args.get("receipt"))

    @blp.arguments(VisibilitySchema, example=examples.VISIBILITY)
    @blp.response(200, VisibilityResultSchema, example=examples.VISIBILITY_RESULT)
    def patch(self, fields, name, message_id):
        """Change the visibility timeout of a received message, counted from now; 0 releases it
        to its original place in the queue. 409 if the receipt is not the current one."""
        return services().queues.change_visibility(name, message_id, fields["receipt"],
                                                   fields["visibility_timeout"])


@blp.route("/<name:name>/dead")
@blp.arguments(DeadArgsSchema, location="query")
@blp.response(200, DeadListSchema, example=examples.DEAD_MESSAGES)
def dead_letters(args, name):
    """The queue's dead letters, oldest first: messages received `max_receives` times."""
    return {"items": services().queues.dead(name, args["limit"])}


@blp.route("/<name:name>/dead/redrive", methods=["POST"])
@blp.response(200, MovedSchema, example=examples.MOVED)
def redrive(name):
    """Move every dead letter back to the queue, visible now, with its receive count reset."""
    return {"moved": services().queues.redrive(name)}

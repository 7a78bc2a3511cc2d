"""A local stand-in for the parts of Telegram's Bot API slabot uses, served on loopback.

How it works: python-telegram-bot calls ``POST {base_url}{token}/{method}`` with
form-encoded parameters (non-string values JSON-encoded), multipart when it
uploads a file; other clients send JSON or a query string, all four are read.
Every answer is Telegram's envelope: ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": ..., "parameters": ...}`` with
the same HTTP status, which the library turns into its exceptions (429 with
``retry_after`` becomes ``RetryAfter``, 502 ``NetworkError``, 400 ``BadRequest``).

Tests push updates with :meth:`TelegramStandIn.push_message` and
:meth:`TelegramStandIn.push_callback`; ``getUpdates`` forgets those below
``offset`` and long-polls until one arrives. While a webhook is set
(``setWebhook``; ``getUpdates`` then answers 409), :meth:`TelegramStandIn.deliver`
posts the pending updates to it as Telegram does, one at a time with the
``X-Telegram-Bot-Api-Secret-Token`` header, and keeps those not answered 2xx
for the next delivery. Every message, in or out, is kept
per chat with Telegram's per-chat message ids, so replies, edits and callback
queries refer to messages that exist; text sent with ``parse_mode="HTML"`` is
checked and stored as Telegram stores it, plain text plus entities. A second
``getUpdates`` ends the one still waiting with 409, as Telegram does when two
bot processes poll one token.
Knobs: :meth:`TelegramStandIn.fail_next` (the next call of a method fails),
:meth:`TelegramStandIn.hold_next` (the next matching call waits, untaken, until
:meth:`TelegramStandIn.release`; a caller that went away meanwhile is not
answered and nothing is sent), ``down`` (every request answers 502),
``blocked`` (private chats whose user blocked the bot: 403). Pushes and knobs
must be used from the event loop that serves the stand-in. Not modelled:
privacy mode in groups, Markdown parsing, inline mode, file downloads.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from channels.messages import utc_now

ChatType = Literal["private", "group", "supergroup"]
Params = dict[str, Any]

BOT_USERNAME = "slabot_test_bot"
MAX_TEXT = 4096
MAX_CAPTION = 1024
# a command as Telegram marks it: up to 32 letters, digits or underscores, optionally "@botname"
_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{1,64})?(?=\s|$)")
# the tags Telegram's HTML supports and the entity each one makes
_HTML_TAGS = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
              "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "span": "spoiler",
              "tg-spoiler": "spoiler", "a": "text_link", "code": "code", "pre": "pre", "blockquote": "blockquote",
              "tg-emoji": "custom_emoji"}
_HTML_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
# a tag from "<" (its name runs to a space or ">"), or an entity from "&" followed by a name or "#"
_HTML_MARKUP = re.compile(r"<(?P<closing>/?)(?P<name>[^\s<>/]*)(?P<attributes>[^<>]*)(?P<end>>?)"
                          r"|&(?P<entity>#?[A-Za-z0-9]+)(?P<semicolon>;?)")
_PARSE_MODES = frozenset({"HTML", "Markdown", "MarkdownV2"})
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what setWebhook accepts as secret_token
_CONFLICT_POLL = ("Conflict: terminated by other getUpdates request; make sure that only one bot instance is "
                  "running")
_CONFLICT_WEBHOOK = ("Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
                     "the webhook first")


@dataclass(frozen=True)
class Upload:
    """A file the bot uploaded in a multipart request."""

    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class MessageCall:
    """A call that sent or changed one message, ``text`` as the bot sent it; edits are recorded as just this."""

    method: str
    chat_id: int
    message_id: int
    text: str | None
    parse_mode: str | None
    reply_markup: dict[str, Any] | None


@dataclass(frozen=True)
class Sent(MessageCall):
    """One message the bot sent (sendMessage, sendPhoto, sendDocument); ``text`` holds a caption too."""

    reply_to_message_id: int | None
    message_thread_id: int | None
    file: Upload | None
    params: Params


@dataclass(frozen=True)
class AnsweredCallback:
    """One answerCallbackQuery call, with the query it answered."""

    callback_query_id: str
    text: str | None
    show_alert: bool
    query: dict[str, Any]


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status and ``error_code`` are the same."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return JSONResponse(body, status_code=self.code)


@dataclass
class _Call:
    params: Params
    files: dict[str, Upload]
    request: Request


Handler = Callable[[_Call], Awaitable[Any]]


@dataclass
class TelegramStandIn:
    """State and behaviour of the stand-in; tests push updates, set the knobs and read what the bot sent."""

    token: str = "123:TEST"
    username: str = BOT_USERNAME
    down: bool = False
    blocked: set[int] = field(default_factory=set)
    now: Callable[[], datetime] = field(default=utc_now)  # the clock of its dates
    sent: list[Sent] = field(default_factory=list)
    edits: list[MessageCall] = field(default_factory=list)
    answered_callbacks: list[AnsweredCallback] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)  # requests per method, failed ones included
    commands: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # by language code, "" the default
    webhook: Params | None = None  # the last setWebhook call's parameters, None after deleteWebhook
    pending: list[dict[str, Any]] = field(default_factory=list)  # updates getUpdates has not seen confirmed
    failures: dict[str, list[ApiError]] = field(default_factory=dict)
    held: list[Params] = field(default_factory=list)  # the parameters of each call that was held (hold_next)
    _holds: dict[str, Callable[[Params], bool]] = field(default_factory=dict)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _messages: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    _last_message_id: Counter[int] = field(default_factory=Counter)
    _chats: dict[int, dict[str, Any]] = field(default_factory=dict)
    _users: dict[int, dict[str, Any]] = field(default_factory=dict)
    _callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    _update_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _callback_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _file_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _poll_generation: int = 0
    conflicts: int = 0  # polls ended with 409 because another one came (two processes polling one token)

    # -- what tests use -------------------------------------------------------------------------

    @property
    def bot_user(self) -> dict[str, Any]:
        return {"id": int(self.token.split(":", 1)[0]), "is_bot": True, "first_name": "slabot",
                "username": self.username}

    def fail_next(self, method: str, error_code: int, description: str, retry_after: int | None = None) -> None:
        """The next call of ``method`` answers this error (queued: call twice for two failures)."""
        self.failures.setdefault(method.lower(), []).append(ApiError(error_code, description, retry_after))

    def hold_next(self, method: str, matching: Callable[[Params], bool] = lambda params: True) -> None:
        """The next call of ``method`` whose parameters match waits, not taken yet, until :meth:`release` (as a
        request that hangs on its way to Telegram); it is then taken, unless its caller went away meanwhile."""
        self._holds[method.lower()] = matching
        self._released.clear()

    def release(self) -> None:
        """Let the held calls go on."""
        self._holds.clear()
        self._released.set()

    def messages_to(self, chat_id: int) -> list[Sent]:
        return [s for s in self.sent if s.chat_id == chat_id]

    def message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """A message as it stands now (after edits), in the Bot API's JSON form."""
        return self._messages[(chat_id, message_id)]

    def push_message(self, chat_id: int, user_id: int, text: str, *, chat_type: ChatType | None = None,
                     username: str | None = None, first_name: str = "Piet", last_name: str | None = None,
                     language_code: str | None = "nl", title: str = "Support", reply_to: int | None = None,
                     thread_id: int | None = None) -> dict[str, Any]:
        """A user writes ``text`` in a chat: queue the Update and return it.

        ``chat_type`` defaults to what Telegram's ids say: positive is private, ``-100...`` a supergroup,
        other negative ids a group. A leading "/command" or "/command@bot" gets a bot_command entity.
        """
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        for key, value in (("last_name", last_name), ("username", username), ("language_code", language_code)):
            if value is not None:
                user[key] = value
        self._users[user_id] = user
        kind = chat_type or _chat_type(chat_id)
        if kind == "private":
            chat = {"id": chat_id, "type": "private", "first_name": first_name}
            if username is not None:
                chat["username"] = username
        else:
            chat = {"id": chat_id, "type": kind, "title": title}
        self._chats[chat_id] = chat
        message = self._new_message(chat_id, {"from": user, "text": text})
        command = _COMMAND.match(text)
        if command:
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": _utf16_len(command.group())}]
        if reply_to is not None:
            message["reply_to_message"] = self._messages[(chat_id, reply_to)]
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        return self._push({"message": message})

    def push_callback(self, chat_id: int, user_id: int, data: str, message_id: int) -> dict[str, Any]:
        """A user presses an inline button with ``data`` under a message the bot sent: queue the Update."""
        message = self._messages.get((chat_id, message_id))
        if message is None or message["from"]["id"] != self.bot_user["id"]:
            raise KeyError(f"the bot sent no message {message_id} in chat {chat_id}")
        query_id = str(next(self._callback_ids))
        query = {"id": query_id, "from": self._user(user_id), "message": message, "chat_instance": str(chat_id),
                 "data": data}
        self._callbacks[query_id] = query
        return self._push({"callback_query": query})

    async def deliver(self, url: str | None = None, *, timeout: float = 10.0) -> list[httpx.Response]:
        """Post the pending updates to the webhook in order, one at a time, as Telegram does.

        ``url`` replaces the https URL given to setWebhook (the loopback address behind the TLS proxy). An
        update answered 2xx is delivered; the first other answer ends the round and that update stays pending,
        as Telegram keeps it and tries again. The answers, one per post.
        """
        if self.webhook is None:
            raise RuntimeError("no webhook is set: the bot polls with getUpdates")
        target = url or str(self.webhook["url"])
        secret = self.webhook.get("secret_token")
        answers: list[httpx.Response] = []
        while self.pending:
            update = self.pending[0]
            answer = await post_update_to(target, update, None if secret is None else str(secret), timeout)
            answers.append(answer)
            if not answer.is_success:
                break
            self.pending = [u for u in self.pending if u is not update]
        return answers

    # -- state --------------------------------------------------------------------------------

    def _push(self, body: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **body}
        self.pending.append(update)
        self._wake()
        return update

    def _wake(self) -> None:
        self._arrived.set()
        self._arrived = asyncio.Event()

    def _user(self, user_id: int) -> dict[str, Any]:
        return self._users.get(user_id) or {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}

    def _chat(self, chat_id: int) -> dict[str, Any]:
        known = self._chats.get(chat_id)
        if known is not None:
            return known
        kind = _chat_type(chat_id)
        if kind == "private":
            return {"id": chat_id, "type": kind, "first_name": self._user(chat_id)["first_name"]}
        return {"id": chat_id, "type": kind, "title": f"Chat {chat_id}"}

    def _new_message(self, chat_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        self._last_message_id[chat_id] += 1
        message_id = self._last_message_id[chat_id]
        message = {"message_id": message_id, "date": int(self.now().timestamp()), "chat": self._chat(chat_id),
                   **fields}
        self._messages[(chat_id, message_id)] = message
        return message

    def _file_id(self) -> tuple[str, str]:
        number = next(self._file_ids)
        return f"FILE{number:08d}", f"U{number:08d}"

    # -- the API ------------------------------------------------------------------------------

    def _handlers(self) -> dict[str, Handler]:
        return {name.lower(): handler for name, handler in {
            "getMe": self._get_me, "logOut": self._true, "close": self._true,
            "getUpdates": self._get_updates, "setWebhook": self._set_webhook, "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info, "sendMessage": self._send_message,
            "sendPhoto": self._send_photo, "sendDocument": self._send_document,
            "editMessageText": self._edit_message_text, "editMessageReplyMarkup": self._edit_reply_markup,
            "answerCallbackQuery": self._answer_callback_query, "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands, "deleteMyCommands": self._delete_my_commands,
            "getChat": self._get_chat,
        }.items()}

    async def _true(self, call: _Call) -> bool:
        return True

    async def _get_me(self, call: _Call) -> dict[str, Any]:
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False}

    async def _get_updates(self, call: _Call) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(409, _CONFLICT_WEBHOOK)
        offset = _opt_int(call.params, "offset")
        if offset is not None and offset < 0:
            self.pending = self.pending[offset:]
        elif offset is not None:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        limit = min(max(_opt_int(call.params, "limit") or 100, 1), 100)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(call.params.get("timeout") or 0)
        self._poll_generation += 1
        mine = self._poll_generation
        self._wake()  # a poll still waiting sees the new generation and ends with 409
        disconnected = asyncio.ensure_future(call.request.receive())  # {"type": "http.disconnect"} when gone
        try:
            while True:
                if self._poll_generation != mine:
                    self.conflicts += 1
                    raise ApiError(409, _CONFLICT_POLL)
                if self.webhook is not None:
                    raise ApiError(409, _CONFLICT_WEBHOOK)
                if self.pending:
                    return self.pending[:limit]
                remaining = deadline - loop.time()
                if remaining <= 0 or disconnected.done():
                    return []
                arrived = asyncio.ensure_future(self._arrived.wait())
                await asyncio.wait({arrived, disconnected}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                arrived.cancel()
        finally:
            disconnected.cancel()

    async def _set_webhook(self, call: _Call) -> bool:
        if not str(call.params.get("url", "")).startswith("https://"):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        secret = call.params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if _flag(call.params, "drop_pending_updates"):
            self.pending.clear()
        self.webhook = dict(call.params)
        self._wake()
        return True

    async def _delete_webhook(self, call: _Call) -> bool:
        if _flag(call.params, "drop_pending_updates"):
            self.pending.clear()
        self.webhook = None
        return True

    async def _get_webhook_info(self, call: _Call) -> dict[str, Any]:
        info: dict[str, Any] = {"url": "", "has_custom_certificate": False, "pending_update_count": len(self.pending)}
        if self.webhook is not None:
            info["url"] = self.webhook["url"]
            info["max_connections"] = _opt_int(self.webhook, "max_connections") or 40
            allowed = _opt_json(self.webhook, "allowed_updates")
            if allowed:
                info["allowed_updates"] = allowed
        return info

    def _target(self, params: Params) -> int:
        chat_id = _opt_int(params, "chat_id")
        if chat_id is None:
            raise ApiError(400, "Bad Request: chat not found")
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    def _send(self, method: str, call: _Call, fields: dict[str, Any], text_key: Literal["text", "caption"],
              file: Upload | None = None) -> dict[str, Any]:
        params = call.params
        chat_id = self._target(params)
        text = params.get(text_key)
        parse_mode = params.get("parse_mode")
        if text is not None:
            fields[text_key], entities = _render(str(text), parse_mode, caption=text_key == "caption")
            if entities:
                fields["entities" if text_key == "text" else "caption_entities"] = entities
        reply_to = _opt_int(params, "reply_to_message_id")
        reply_parameters = _opt_json(params, "reply_parameters")
        if isinstance(reply_parameters, dict):
            reply_to = int(reply_parameters["message_id"])
        thread_id = _opt_int(params, "message_thread_id")
        markup = _opt_json(params, "reply_markup")
        if reply_to is not None:
            replied = self._messages.get((chat_id, reply_to))
            if replied is None:
                raise ApiError(400, "Bad Request: message to be replied not found")
            fields["reply_to_message"] = replied
        if thread_id is not None:
            fields["message_thread_id"] = thread_id
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            fields["reply_markup"] = markup
        message = self._new_message(chat_id, {"from": self.bot_user, **fields})
        self.sent.append(Sent(method, chat_id, message["message_id"], None if text is None else str(text),
                              parse_mode, markup if isinstance(markup, dict) else None, reply_to, thread_id, file,
                              dict(params)))
        return message

    async def _send_message(self, call: _Call) -> dict[str, Any]:
        if not str(call.params.get("text", "")).strip():
            raise ApiError(400, "Bad Request: message text is empty")
        return self._send("sendMessage", call, {}, "text")

    async def _send_photo(self, call: _Call) -> dict[str, Any]:
        file = self._upload(call, "photo")
        file_id, unique = self._file_id()
        sizes = [{"file_id": file_id, "file_unique_id": unique, "width": 320, "height": 240,
                  "file_size": len(file.data) if file else 0}]
        return self._send("sendPhoto", call, {"photo": sizes}, "caption", file)

    async def _send_document(self, call: _Call) -> dict[str, Any]:
        file = self._upload(call, "document")
        file_id, unique = self._file_id()
        document: dict[str, Any] = {"file_id": file_id, "file_unique_id": unique}
        if file is not None:
            document.update(file_name=file.name, mime_type=file.content_type, file_size=len(file.data))
        return self._send("sendDocument", call, {"document": document}, "caption", file)

    def _upload(self, call: _Call, name: str) -> Upload | None:
        """The uploaded file, or None when the bot sent a file_id or URL instead."""
        value = call.params.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            name = value.removeprefix("attach://")
        elif isinstance(value, str) and value:
            return None
        if name not in call.files:
            raise ApiError(400, f"Bad Request: there is no {name} in the request")
        return call.files[name]

    def _editable(self, params: Params) -> tuple[int, int, dict[str, Any]]:
        if "inline_message_id" in params:
            raise ApiError(400, "Bad Request: inline messages are not supported by the stand-in")
        chat_id, message_id = self._target(params), _opt_int(params, "message_id")
        message = self._messages.get((chat_id, message_id or 0))
        if message is None or message_id is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message["from"]["id"] != self.bot_user["id"]:
            raise ApiError(400, "Bad Request: message can't be edited")
        return chat_id, message_id, message

    def _edit(self, method: str, params: Params, text: str | None) -> dict[str, Any]:
        chat_id, message_id, message = self._editable(params)
        markup = _opt_json(params, "reply_markup")
        changed = dict(message)
        if text is not None:
            changed["text"], entities = _render(text, params.get("parse_mode"))
            changed.pop("entities", None)
            if entities:
                changed["entities"] = entities
        changed.pop("reply_markup", None)
        if isinstance(markup, dict) and markup.get("inline_keyboard"):
            changed["reply_markup"] = markup
        if changed == message:
            raise ApiError(400, "Bad Request: message is not modified: specified new message content and reply "
                                "markup are exactly the same as a current content and reply markup of the message")
        changed["edit_date"] = int(self.now().timestamp())
        self._messages[(chat_id, message_id)] = changed
        self.edits.append(MessageCall(method, chat_id, message_id, text, params.get("parse_mode"),
                               markup if isinstance(markup, dict) else None))
        return changed

    async def _edit_message_text(self, call: _Call) -> dict[str, Any]:
        text = str(call.params.get("text", ""))
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        return self._edit("editMessageText", call.params, text)

    async def _edit_reply_markup(self, call: _Call) -> dict[str, Any]:
        return self._edit("editMessageReplyMarkup", call.params, None)

    async def _answer_callback_query(self, call: _Call) -> bool:
        query = self._callbacks.pop(str(call.params.get("callback_query_id", "")), None)
        if query is None:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        text = call.params.get("text")
        self.answered_callbacks.append(AnsweredCallback(query["id"], None if text is None else str(text),
                                                        _flag(call.params, "show_alert"), query))
        return True

    async def _set_my_commands(self, call: _Call) -> bool:
        commands = _opt_json(call.params, "commands")
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        self.commands[str(call.params.get("language_code") or "")] = commands
        return True

    async def _get_my_commands(self, call: _Call) -> list[dict[str, str]]:
        return self.commands.get(str(call.params.get("language_code") or ""), [])

    async def _delete_my_commands(self, call: _Call) -> bool:
        self.commands.pop(str(call.params.get("language_code") or ""), None)
        return True

    async def _get_chat(self, call: _Call) -> dict[str, Any]:
        gifts = dict.fromkeys(("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription",
                               "gifts_from_channels"), False)
        return {**self._chat(self._target(call.params)), "accent_color_id": 0, "max_reaction_count": 11,
                "accepted_gift_types": gifts}

    # -- HTTP ---------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        method = request.path_params["method"]
        self.calls[method] += 1
        try:
            if self.down:
                raise ApiError(502, "Bad Gateway")
            if request.path_params["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            handler = self._handlers().get(method.lower())
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            queued = self.failures.get(method.lower())
            if queued:
                raise queued.pop(0)
            params, files = await _read_params(request)
            holding = self._holds.get(method.lower())
            if holding is not None and holding(params):
                del self._holds[method.lower()]
                self.held.append(params)
                await self._released.wait()
                if await request.is_disconnected():  # the caller is gone: Telegram never got the call
                    raise ApiError(502, "Bad Gateway")
            result = await handler(_Call(params, files, request))
        except ApiError as error:
            return error.response()
        return JSONResponse({"ok": True, "result": result})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/bot{token}/{method}", self.handle, methods=["GET", "POST"])])


async def post_update_to(url: str, update: dict[str, Any], secret_token: str | None = None,
                         timeout: float = 10.0) -> httpx.Response:
    """POST ``update`` to a bot's webhook as Telegram does, with the secret header when one was set."""
    headers = {} if secret_token is None else {"X-Telegram-Bot-Api-Secret-Token": secret_token}
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.post(url, json=update, headers=headers)


async def _read_params(request: Request) -> tuple[Params, dict[str, Upload]]:
    """The call's parameters from the query string and a JSON, form or multipart body, and its files."""
    params: Params = dict(request.query_params)
    files: dict[str, Upload] = {}
    body = await request.body()
    kind = request.headers.get("content-type", "")
    if kind.startswith("application/json") and body:
        loaded = json.loads(body)
        if not isinstance(loaded, dict):
            raise ApiError(400, "Bad Request: parameters must be a JSON object")
        params.update(loaded)
    elif kind.startswith("application/x-www-form-urlencoded"):
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    elif kind.startswith("multipart/form-data"):
        parsed = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + kind.encode("latin-1") + b"\r\n\r\n" + body)
        for part in parsed.iter_parts():
            name = str(part.get_param("name", header="content-disposition") or "")
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            filename = part.get_filename()
            if filename is None:
                params[name] = data.decode("utf-8")
            else:
                files[name] = Upload(filename, part.get_content_type(), data)
    return params, files


def _chat_type(chat_id: int) -> ChatType:
    if chat_id > 0:
        return "private"
    return "supergroup" if str(chat_id).startswith("-100") else "group"


def _utf16_len(text: str) -> int:
    """Telegram counts entity offsets and lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _opt_int(params: Params, name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: invalid {name} specified") from None


def _opt_json(params: Params, name: str) -> Any:
    """A parameter that PTB sends JSON-encoded in a form (and JSON clients send as a value)."""
    value = params.get(name)
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ApiError(400, f"Bad Request: can't parse {name} JSON object") from None


def _flag(params: Params, name: str) -> bool:
    value = params.get(name)
    return value is True or value in ("true", "True", "1")


def _render(text: str, parse_mode: Any, *, caption: bool = False) -> tuple[str, list[dict[str, Any]]]:
    """The text as Telegram stores it, plain and with entities, after its checks on parse_mode and length."""
    if parse_mode is not None and parse_mode != "" and parse_mode not in _PARSE_MODES:
        raise ApiError(400, f"Bad Request: unsupported parse_mode {parse_mode!r}")
    plain, entities = _parse_html(text) if parse_mode == "HTML" else (text, [])
    if len(plain) > (MAX_CAPTION if caption else MAX_TEXT):
        raise ApiError(400, "Bad Request: message caption is too long" if caption
                       else "Bad Request: message is too long")
    return plain, entities


def _parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML: every "<" opens or closes a supported tag, tags nest, every "&" starts a known entity."""
    plain: list[str] = []
    open_tags: list[tuple[str, int, str]] = []  # name, UTF-16 offset in the plain text, attributes
    entities: list[dict[str, Any]] = []
    done = 0
    for markup in _HTML_MARKUP.finditer(text):
        plain.append(text[done:markup.start()])
        done = markup.end()
        where = f"at byte offset {len(text[:markup.start()].encode('utf-8'))}"
        name, entity = (markup.group("name") or "").lower(), markup.group("entity")
        if entity is not None:
            if not markup.group("semicolon"):
                raise _cant_parse(f"Can't find end of the entity starting {where}")
            if entity.startswith("#"):
                number = entity[1:]
                plain.append(chr(int(number[1:], 16) if number[:1] in "xX" else int(number)))
            elif entity in _HTML_ENTITIES:
                plain.append(_HTML_ENTITIES[entity])
            else:
                raise _cant_parse(f'Unsupported HTML entity "&{entity};" {where}')
        elif name not in _HTML_TAGS:
            raise _cant_parse(f'Unsupported start tag "{name}" {where}')
        elif not markup.group("end"):
            raise _cant_parse(f"Unclosed start tag {where}")
        elif not markup.group("closing"):
            open_tags.append((name, _utf16_len("".join(plain)), markup.group("attributes")))
        elif not open_tags or open_tags[-1][0] != name:
            expected = f'"</{open_tags[-1][0]}>"' if open_tags else "no end tag"
            raise _cant_parse(f'Unmatched end tag {where}, expected {expected}, found "</{name}>"')
        else:
            _, offset, attributes = open_tags.pop()
            length = _utf16_len("".join(plain)) - offset
            if length:
                entities.append(_html_entity(name, offset, length, attributes))
    if open_tags:
        raise _cant_parse(f'Can\'t find end tag corresponding to start tag "{open_tags[-1][0]}"')
    plain.append(text[done:])
    return "".join(plain), sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def _html_entity(tag: str, offset: int, length: int, attributes: str) -> dict[str, Any]:
    entity: dict[str, Any] = {"type": _HTML_TAGS[tag], "offset": offset, "length": length}
    attribute = {"a": "href", "tg-emoji": "emoji-id"}.get(tag)
    found = re.search(rf"{attribute}\s*=\s*[\"']([^\"']*)", attributes) if attribute else None
    if tag == "a":
        entity["url"] = html.unescape(found.group(1)) if found else ""
    elif tag == "tg-emoji":
        entity["custom_emoji_id"] = found.group(1) if found else ""
    return entity


def _cant_parse(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: can't parse entities: {reason}")
